// The CLI lines of issue 3, run as a user would: make-test-model, inspect (text,
// --json, --tensor --dequant --out) and quantize -> inspect round trips.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "checkpoint_test_support.h"
#include "io/safetensors.h"

namespace fp4serve {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::fixture_dir;
using testing::reference_decode;
using testing::reference_widen;
using testing::ScratchDir;
using testing::CliResult;
using testing::fp4serve;
using testing::quiet;

TEST(CheckpointCli, InspectTextShowsLayoutScheduleModulesTotalsAndMemory) {
  const CliResult r = fp4serve("inspect " + fixture_dir("nvfp4_small"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("layout       modelopt-nvfp4 (naming: transformers)"));
  EXPECT_THAT(r.output, HasSubstr("modelopt quant_algo NVFP4 group_size 16"));
  EXPECT_THAT(r.output, HasSubstr("  2       HCA        8      learned"));
  EXPECT_THAT(r.output, HasSubstr("  1       CSA        4      hash"));
  EXPECT_THAT(r.output, HasSubstr("mtp.0   SWA        0      learned"));
  // 64 x 64 NVFP4: 2048 weight bytes + 256 scale bytes.
  EXPECT_THAT(r.output, HasSubstr("layers.0.attn.wkv                            nvfp4      [64, 64]               2304  "
                                  "model.layers.0.self_attn.kv_proj"));
  EXPECT_THAT(r.output, HasSubstr("layers.0.attn.wo_a                           bf16"));
  EXPECT_THAT(r.output, HasSubstr("layers.3.ffn.experts.*.w2 (x4)"));
  EXPECT_THAT(r.output, HasSubstr("totals per encoding"));
  EXPECT_THAT(r.output, HasSubstr("estimated memory"));
  EXPECT_THAT(r.output, HasSubstr("per 1k tokens (float32)"));
  EXPECT_THAT(r.output, HasSubstr("warnings (0)"));
}

TEST(CheckpointCli, InspectJsonAgreesWithTheLoader) {
  const CliResult r = fp4serve("inspect " + fixture_dir("native_small") + " --json");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  const Checkpoint ck = load_checkpoint(fixture_dir("native_small"), quiet());
  EXPECT_EQ(j["layout"], "deepseek-native");
  EXPECT_EQ(j["modules"].size(), ck.linears.size());
  EXPECT_EQ(j["tensors"].size(), ck.tensors.size());
  EXPECT_EQ(j["layers"].size(), 5u);
  EXPECT_EQ(j["layers"][2]["attention"], "HCA");
  EXPECT_EQ(j["layers"][0]["routing"], "hash");
  uint64_t total = 0;
  for (const auto& item : j["totals"].items()) total += item.value()["bytes"].get<uint64_t>();
  uint64_t expected = 0;
  for (const auto& [name, lw] : ck.linears) expected += lw.weight.nbytes + lw.scale.nbytes;
  EXPECT_EQ(total, expected);
  // The state the engine keeps, in float32 (small: ratios {0, 4, 8, 4} + MTP 0, head_dim 64,
  // index_head_dim 32, window 8). Fixed: windows 5 x 8 x 64 = 2560; per CSA layer kv and score
  // windows of 8 x 128 and 8 x 64 (indexer) with a spare entry each, 2112 + 1056; the HCA
  // layer's of 8 x 64 and its spare, 1088: 9984 floats. Per token: 2 x (64/4 + 32/4) + 64/8 = 56.
  EXPECT_EQ(j["memory"]["kv_cache_fixed_bytes_per_sequence"].get<uint64_t>(), 9984u * 4);
  EXPECT_EQ(j["memory"]["kv_cache_bytes_per_token"].get<double>(), 56.0 * 4);
}

TEST(CheckpointCli, DequantWritesF32WeightByOwnOrCanonicalName) {
  ScratchDir dir("out");
  const Checkpoint ck = load_checkpoint(fixture_dir("nvfp4_small"), quiet());
  const std::vector<float> expected = reference_decode(ck.linear("layers.2.ffn.experts.3.w2"));
  for (const std::string& name : {std::string("layers.2.ffn.experts.3.w2"),
                                  std::string("model.layers.2.mlp.experts.3.down_proj"),
                                  std::string("model.layers.2.mlp.experts.3.down_proj.weight")}) {
    const std::string out = dir / "w.safetensors";
    const CliResult r = fp4serve("inspect " + fixture_dir("nvfp4_small") + " --tensor " + name + " --dequant --out " + out);
    ASSERT_EQ(r.status, 0) << r.output;
    auto file = SafetensorsFile::open(out);
    const TensorView& w = file->tensor("weight");
    EXPECT_EQ(w.dtype, DType::F32);
    EXPECT_EQ(w.shape, (std::vector<int64_t>{64, 32}));
    EXPECT_EQ(std::memcmp(w.data, expected.data(), w.nbytes), 0) << name;
  }
  // A tensor that is not a linear: F32 in its own shape.
  const std::string out = dir / "ape.safetensors";
  const CliResult r = fp4serve("inspect " + fixture_dir("nvfp4_small") +
                         " --tensor model.layers.2.self_attn.compressor.position_bias --dequant --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  auto file = SafetensorsFile::open(out);
  const std::vector<float> ape = reference_widen(ck.tensor("layers.2.attn.compressor.ape"));
  EXPECT_EQ(file->tensor("weight").shape, (std::vector<int64_t>{8, 64}));
  EXPECT_EQ(std::memcmp(file->tensor("weight").data, ape.data(), ape.size() * 4), 0);
}

// Issue 3's acceptance: `inspect --tensor NAME --dequant` is bit-exact against the table decode
// in every layout, for a linear of every encoding the layout holds and for a plain tensor,
// named as the checkpoint stores it.
TEST(CheckpointCli, DequantIsBitExactInEveryLayout) {
  ScratchDir dir("layouts");
  std::vector<std::string> models = {fixture_dir("transformers_saved_tiny"), fixture_dir("native_small"),
                                     fixture_dir("nvfp4_small")};
  for (const char* layout : {"native", "nvfp4", "transformers-saved", "bf16"}) {
    const std::string out = dir / layout;
    ASSERT_EQ(fp4serve(std::string("make-test-model ") + out + " --layout " + layout + " --seed 2 --preset small").status, 0);
    models.push_back(out);
  }
  for (const std::string& model : models) {
    SCOPED_TRACE(model);
    const Checkpoint ck = load_checkpoint(model, quiet());
    std::map<WeightEncoding, std::string> one_per_encoding;
    for (const auto& [name, lw] : ck.linears) one_per_encoding.emplace(lw.encoding, name);
    for (const auto& [encoding, name] : one_per_encoding) {
      const std::string out = dir / "w.safetensors";
      const CliResult r = fp4serve("inspect " + model + " --tensor " + ck.stored_names.at(name) + " --dequant --out " + out);
      ASSERT_EQ(r.status, 0) << r.output;
      const std::vector<float> expected = reference_decode(ck.linear(name));
      const auto file = SafetensorsFile::open(out);
      const TensorView& w = file->tensor("weight");
      ASSERT_EQ(w.nbytes, expected.size() * sizeof(float)) << name;
      EXPECT_EQ(std::memcmp(w.data, expected.data(), w.nbytes), 0) << name << " " << encoding_name(encoding);
    }
    const std::string tensor = "layers.0.attn_norm.weight";
    const std::string out = dir / "t.safetensors";
    const CliResult r = fp4serve("inspect " + model + " --tensor " + ck.stored_names.at(tensor) + " --dequant --out " + out);
    ASSERT_EQ(r.status, 0) << r.output;
    const std::vector<float> expected = reference_widen(ck.tensor(tensor));
    EXPECT_EQ(std::memcmp(SafetensorsFile::open(out)->tensor("weight").data, expected.data(), expected.size() * 4), 0);
  }
}

TEST(CheckpointCli, ErrorsExitNonZeroNamingTheCulprit) {
  ScratchDir dir("bad");
  CliResult r = fp4serve("inspect " + dir.str());
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("no config.json"));
  r = fp4serve("inspect " + fixture_dir("native_small") + " --tensor layers.9.attn.wq_a --dequant --out " +
               (dir / "x.safetensors"));
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("no tensor or linear named 'layers.9.attn.wq_a'"));
}

TEST(CheckpointCli, QuantizeToEitherTargetThenInspect) {
  ScratchDir dir("q");
  struct Case {
    const char* source;
    const char* args;
    const char* layout;
  };
  for (const Case& c : {Case{"transformers_saved_tiny", "--to native", "deepseek-native"},
                        Case{"native_small", "--to nvfp4 --nvfp4-scope experts", "modelopt-nvfp4"},
                        Case{"native_small", "--to nvfp4 --nvfp4-scope linears", "modelopt-nvfp4"},
                        Case{"nvfp4_small", "--to native", "deepseek-native"}}) {
    SCOPED_TRACE(std::string(c.source) + " " + c.args);
    const std::string out = dir / (std::string(c.source) + std::to_string(std::hash<std::string>()(c.args)));
    CliResult r = fp4serve("quantize " + fixture_dir(c.source) + " " + out + " " + c.args);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_THAT(r.output, AllOf(HasSubstr("relative RMS error per module"), HasSubstr("re-loaded")));
    r = fp4serve("inspect " + out + " --json");
    ASSERT_EQ(r.status, 0) << r.output;
    const auto j = nlohmann::json::parse(r.output);
    EXPECT_EQ(j["layout"], c.layout);
    // Each target's recipe, as inspect reports it (checkpoint_writer.h).
    std::map<std::string, std::string> encodings;
    for (const auto& m : j["modules"]) encodings[m["name"].get<std::string>()] = m["encoding"].get<std::string>();
    const std::string args = c.args;
    const bool native = args == "--to native", experts_only = args.find("experts") != std::string::npos;
    EXPECT_EQ(encodings.at("layers.0.ffn.experts.1.w2"), native ? "mxfp4" : "nvfp4");
    EXPECT_EQ(encodings.at("layers.0.attn.wq_a"), native ? "fp8-block" : experts_only ? "bf16" : "nvfp4");
    EXPECT_EQ(encodings.at("layers.0.attn.wo_a"), native ? "fp8-block" : "bf16");
    EXPECT_EQ(encodings.at("layers.0.ffn.gate"), "bf16");
    EXPECT_EQ(encodings.at("head"), "bf16");
  }
}

// The quantized weights stay close to their source: relative RMS error of the whole
// model within what each format's rounding allows (FP8: 3 mantissa bits; FP4: 1).
TEST(CheckpointCli, QuantizedWeightsAreCloseToTheSource) {
  ScratchDir dir("close");
  const std::string out = dir / "native";
  ASSERT_EQ(fp4serve("quantize " + fixture_dir("transformers_saved_tiny") + " " + out + " --to native").status, 0);
  const Checkpoint source = load_checkpoint(fixture_dir("transformers_saved_tiny"), quiet());
  const Checkpoint quantized = load_checkpoint(out, quiet());
  for (const auto& [name, lw] : quantized.linears) {
    const std::vector<float> a = reference_decode(source.linear(name));
    const std::vector<float> b = reference_decode(lw);
    double diff = 0, ref = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
      ref += double(a[i]) * a[i];
    }
    const double bound = lw.encoding == WeightEncoding::kMXFP4 ? 0.2 : lw.encoding == WeightEncoding::kFP8Block ? 0.05 : 0.0;
    EXPECT_LE(std::sqrt(diff / ref), bound) << name << " " << encoding_name(lw.encoding);
  }
}

TEST(CheckpointCli, MakeTestModelWritesEveryLayout) {
  ScratchDir dir("make");
  for (const char* layout : {"native", "nvfp4", "transformers-saved", "bf16"}) {
    const std::string out = dir / layout;
    CliResult r = fp4serve(std::string("make-test-model ") + out + " --layout " + layout + " --seed 1 --preset small");
    ASSERT_EQ(r.status, 0) << r.output;
    r = fp4serve("inspect " + out);
    EXPECT_EQ(r.status, 0) << r.output;
  }
  const CliResult bad = fp4serve("make-test-model " + (dir / "x") + " --layout gguf");
  EXPECT_NE(bad.status, 0);
  EXPECT_THAT(bad.output, HasSubstr("--layout 'gguf'"));
}

}  // namespace
}  // namespace fp4serve
