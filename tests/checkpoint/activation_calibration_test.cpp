// quantize --calibrate-tokens: the observer at a backend's linear entry, ModelOpt's rule for
// experts calibration never reached (values typed here from layer_utils.set_expert_quantizer_amax:
// max of the layer's reached experts per projection, else 0.5), and the whole CLI path.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "base/error.h"
#include "checkpoint/activation_calibration.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/test_model.h"
#include "checkpoint_test_support.h"
#include "formats/weight_quantization.h"
#include "backend/backend.h"

namespace fp4serve {
namespace {

using ::testing::HasSubstr;
using testing::ScratchDir;
using testing::CliResult;
using testing::fp4serve;
using testing::quiet;

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(InputAmaxRecorder, SeesEveryLinearInputOfItsBackendOnlyWhileInstalled) {
  const LinearWeight w = quantize_weight(std::vector<float>(8, 0.25f), 2, 4, WeightEncoding::kBF16, "layers.0.attn.wq_a");
  // 3 rows of 4 inputs at a stride of 6: columns 4 and 5 are not the linear's and must be ignored.
  const std::vector<float> x = {1, -2, 0.5f, 3, 100, 100,  //
                                -4.5f, 1, 0, 2, 100, 100,  //
                                0.25f, NAN, -1, 1, 100, 100};
  std::vector<float> y(6);
  LinearJob job;
  job.weight = &w;
  job.x = x.data();
  job.x_stride = 6;
  job.rows = 3;
  job.y = y.data();
  const auto backend = make_backend(DeviceKind::kCpu), other = make_backend(DeviceKind::kCpu);
  const std::span<const LinearJob> one(&job, 1);
  InputAmaxRecorder recorder;
  backend->set_activation_observer(&recorder);
  backend->linear(one);
  job.rows = 1;  // a second call: amax is a running max, rows add up
  backend->linear(one);
  const std::vector<float> big(4, 1000.0f);
  job.x = big.data();
  job.x_stride = 0;
  other->linear(one);  // another backend's linears are not this observer's
  backend->set_activation_observer(nullptr);
  backend->linear(one);  // no observer any more
  const auto seen = recorder.observed();
  ASSERT_EQ(seen.size(), 1u);
  const ObservedInput& o = seen.at("layers.0.attn.wq_a");
  EXPECT_EQ(o.amax, 4.5f);
  EXPECT_EQ(o.rows, 4);
  EXPECT_EQ(o.non_finite, 1);
}

ExpectedLinear linear(const std::string& name, LinearGroup group) { return ExpectedLinear{name, 16, 16, group, ""}; }

TEST(CompleteInputCalibration, ModelOptRuleForExpertsNeverReached) {
  const auto E = LinearGroup::kRoutedExpert;
  const std::vector<ExpectedLinear> needed = {
      linear("layers.0.attn.wq_a", LinearGroup::kAttention),
      linear("layers.1.ffn.experts.0.w1", E), linear("layers.1.ffn.experts.1.w1", E), linear("layers.1.ffn.experts.2.w1", E),
      linear("layers.1.ffn.experts.0.w2", E), linear("layers.1.ffn.experts.1.w2", E), linear("layers.1.ffn.experts.2.w2", E),
      linear("layers.2.ffn.experts.0.w1", E), linear("layers.2.ffn.experts.1.w1", E)};
  const std::map<std::string, ObservedInput> observed = {
      {"layers.0.attn.wq_a", {3.0f, 10, 0}},
      {"layers.1.ffn.experts.0.w1", {2.0f, 4, 0}},
      {"layers.1.ffn.experts.1.w1", {5.0f, 6, 0}},
      {"layers.1.ffn.experts.2.w1", {9.0f, 0, 0}},  // no rows: not reached, whatever amax says
      {"layers.1.ffn.experts.2.w2", {7.0f, 3, 0}},
      {"layers.0.ffn.gate", {8.0f, 10, 0}}};  // not NVFP4 in this export: ignored
  const InputCalibration c = complete_input_calibration(observed, needed);
  const std::map<std::string, float> expected = {
      {"layers.0.attn.wq_a", 3.0f},        {"layers.1.ffn.experts.0.w1", 2.0f}, {"layers.1.ffn.experts.1.w1", 5.0f},
      {"layers.1.ffn.experts.2.w1", 5.0f}, {"layers.1.ffn.experts.0.w2", 7.0f}, {"layers.1.ffn.experts.1.w2", 7.0f},
      {"layers.1.ffn.experts.2.w2", 7.0f}, {"layers.2.ffn.experts.0.w1", 0.5f}, {"layers.2.ffn.experts.1.w1", 0.5f}};
  EXPECT_EQ(c.amax, expected);
  EXPECT_EQ(c.filled_from_layer, (std::vector<std::string>{"layers.1.ffn.experts.2.w1", "layers.1.ffn.experts.0.w2",
                                                           "layers.1.ffn.experts.1.w2"}));
  EXPECT_EQ(c.filled_with_fallback,
            (std::vector<std::string>{"layers.2.ffn.experts.0.w1", "layers.2.ffn.experts.1.w1"}));
}

TEST(CompleteInputCalibration, ErrorsNameTheLinear) {
  const std::vector<ExpectedLinear> needed = {linear("layers.0.attn.wq_a", LinearGroup::kAttention)};
  EXPECT_THAT(error_of([&] { complete_input_calibration({}, needed); }),
              HasSubstr("calibration never ran layers.0.attn.wq_a"));
  EXPECT_THAT(error_of([&] { complete_input_calibration({{"layers.0.attn.wq_a", {0.0f, 5, 0}}}, needed); }),
              HasSubstr("input of layers.0.attn.wq_a was all zeros over 5 tokens"));
  EXPECT_THAT(error_of([&] { complete_input_calibration({{"layers.0.attn.wq_a", {2.0f, 5, 3}}}, needed); }),
              HasSubstr("input of layers.0.attn.wq_a had 3 NaN/Inf values"));
}

void write_u16(const std::string& path, const std::vector<uint16_t>& ids) {
  std::ofstream out(path, std::ios::binary);
  for (uint16_t id : ids) out.put(static_cast<char>(id & 0xFF)).put(static_cast<char>(id >> 8));
}

// The lines the CLI prints under its "never reached" heading.
std::set<std::string> listed_after(const std::string& output, const std::string& heading) {
  std::set<std::string> names;
  std::istringstream in(output.substr(output.find(heading) == std::string::npos ? output.size() : output.find(heading)));
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line) && line.rfind("  ", 0) == 0) names.insert(line.substr(2));
  return names;
}

// One calibration token: the hash layers (0, 1) send it to its two tid2eid experts
// only, so every other expert of those layers must be filled from the layer's max.
TEST(QuantizeCalibrate, OneTokenReachesOnlyItsRoutedExpertsTheRestTakeTheLayerMax) {
  ScratchDir dir("calibrate");
  TestModelOptions source;
  source.layout = OutputLayout::kBF16;
  source.preset = "small";
  source.seed = 4;
  write_test_model(dir / "src", source);
  write_u16(dir / "one.u16", {5});
  const CliResult r = fp4serve("quantize " + (dir / "src") + " " + (dir / "out") +
                               " --to nvfp4 --nvfp4-scope linears --calibrate-tokens " + (dir / "one.u16"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("calibrated on 1 tokens in 1 windows"));
  const std::set<std::string> filled = listed_after(r.output, "never reached by calibration");

  const Checkpoint src = load_checkpoint(dir / "src", quiet());
  const Checkpoint out = load_checkpoint(dir / "out", quiet());
  EXPECT_THAT(out.quantization, HasSubstr("NVFP4"));
  EXPECT_THAT(out.quantization, ::testing::Not(HasSubstr("W4A16")));
  const ModelConfig& cfg = src.config;
  for (int64_t layer = 0; layer < cfg.num_hash_layers; ++layer) {
    const TensorView& tid2eid = src.tensor("layers." + std::to_string(layer) + ".ffn.gate.tid2eid");
    std::set<int64_t> routed;
    for (int64_t k = 0; k < tid2eid.shape[1]; ++k) {
      int64_t e = 0;
      if (tid2eid.dtype == DType::I64) {
        std::memcpy(&e, tid2eid.data + 8 * (5 * tid2eid.shape[1] + k), 8);
      } else {
        int32_t e32;
        std::memcpy(&e32, tid2eid.data + 4 * (5 * tid2eid.shape[1] + k), 4);
        e = e32;
      }
      routed.insert(e);
    }
    for (int64_t e = 0; e < cfg.n_routed_experts; ++e)
      for (const char* p : {"w1", "w2", "w3"}) {
        const std::string name = "layers." + std::to_string(layer) + ".ffn.experts." + std::to_string(e) + "." + p;
        EXPECT_EQ(filled.count(name), routed.count(e) ? 0u : 1u) << name;
      }
  }
  // Every NVFP4 linear has an input scale; the unreached experts carry their layer's max
  // per projection; linears reading one input (wq_a and wkv, w1 and w3) agree.
  for (const auto& [name, lw] : out.linears) {
    if (lw.encoding != WeightEncoding::kNVFP4) continue;
    EXPECT_GT(lw.input_scale, 0.0f) << name;
  }
  for (int64_t layer = 0; layer < cfg.num_layers; ++layer) {
    const std::string p = "layers." + std::to_string(layer) + ".";
    EXPECT_EQ(out.linear(p + "attn.wq_a").input_scale, out.linear(p + "attn.wkv").input_scale);
    for (const char* proj : {"w1", "w2", "w3"}) {
      float reached_max = 0;
      for (int64_t e = 0; e < cfg.n_routed_experts; ++e) {
        const std::string name = p + "ffn.experts." + std::to_string(e) + "." + proj;
        if (!filled.count(name)) reached_max = std::max(reached_max, out.linear(name).input_scale);
      }
      for (int64_t e = 0; e < cfg.n_routed_experts; ++e) {
        const std::string name = p + "ffn.experts." + std::to_string(e) + "." + proj;
        if (filled.count(name)) {
          EXPECT_EQ(out.linear(name).input_scale, reached_max) << name;
        }
      }
    }
    for (int64_t e = 0; e < cfg.n_routed_experts; ++e) {
      const std::string x = p + "ffn.experts." + std::to_string(e) + ".";
      EXPECT_EQ(out.linear(x + "w1").input_scale, out.linear(x + "w3").input_scale) << x;
    }
  }
}

// A .txt file goes through the source's tokenizer.json as one string, so the special-token
// strings in it become BOS and EOS: "The history of" is 3 ids in transformers' tokenizer
// (the training run's metrics.json: prompt_ids [470, 1767, 291]), 5 with the markers. The
// tokenizer and generation config come along into the output.
TEST(QuantizeCalibrate, TextUsesTheSourceTokenizerWithSpecialTokensAndCompanionsAreCopied) {
  ScratchDir dir("calibrate-text");
  std::ofstream(dir / "c.txt") << "<｜begin▁of▁sentence｜>The history of<｜end▁of▁sentence｜>";
  const std::string source = std::string(FP4SERVE_SOURCE_DIR) + "/models/default";
  const CliResult r = fp4serve("quantize " + source + " " + (dir / "out") + " --to nvfp4 --calibrate-tokens " + (dir / "c.txt"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("calibrated on 5 tokens in 1 windows"));
  EXPECT_THAT(r.output, HasSubstr("copied from the source: generation_config.json tokenizer.json tokenizer_config.json\n"));
  const Checkpoint out = load_checkpoint(dir / "out", quiet());
  EXPECT_GT(out.linear("layers.0.attn.wq_a").input_scale, 0.0f);
  EXPECT_TRUE(std::filesystem::exists(dir / "out/tokenizer.json"));
}

TEST(QuantizeCalibrate, ErrorsNameTheCulprit) {
  ScratchDir dir("calibrate-errors");
  TestModelOptions source;
  source.layout = OutputLayout::kBF16;
  source.preset = "small";
  write_test_model(dir / "src", source);
  write_u16(dir / "big.u16", {1, 64});  // the small preset's vocabulary is 64 ids
  CliResult r = fp4serve("quantize " + (dir / "src") + " " + (dir / "a") + " --to nvfp4 --calibrate-tokens " + (dir / "big.u16"));
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("calibration token 1 is id 64, outside the model's vocabulary [0, 64)"));
  r = fp4serve("quantize " + (dir / "src") + " " + (dir / "b") + " --to native --calibrate-tokens " + (dir / "big.u16"));
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("activation calibration applies to --to nvfp4 only"));
  r = fp4serve("quantize " + (dir / "src") + " " + (dir / "c") + " --to nvfp4 --calibrate-tokens " + (dir / "x.csv"));
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("expected a .u16 token-id file or a .txt text file"));
  std::ofstream(dir / "text.txt") << "Some text.";
  r = fp4serve("quantize " + (dir / "src") + " " + (dir / "d") + " --to nvfp4 --calibrate-tokens " + (dir / "text.txt"));
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("tokenizer.json not found"));
}

}  // namespace
}  // namespace fp4serve
