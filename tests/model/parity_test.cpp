// Our logits against the independent references committed in tests/fixtures/parity
// (made by tools/reference on the GPU machine, see its README):
//  - transformers' DeepseekV4ForCausalLM in fp32 on the same weights (BF16, NVFP4 and
//    native dequantized), with --act-quant off semantics where transformers has none:
//    our median relative L2 error and top-1 agreement must be within the spread between
//    transformers' own bf16 and fp32 runs;
//  - DeepSeek's official inference code on the native FP8 + MXFP4 checkpoints (FP8
//    activations, QAT simulations): our default numerics, prefill and decode, must sit
//    well inside that same bf16 noise level.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "io/safetensors.h"
#include "cpu_model.h"
#include "model/model.h"

namespace fp4serve {
namespace {

const std::string kFixtures = std::string(FP4SERVE_SOURCE_DIR) + "/tests/fixtures/parity/";

struct Logits {
  std::vector<float> values;  // [S, V]
  int64_t S = 0, V = 0;
};

Logits read_logits(const std::string& file, const std::string& name) {
  auto f = SafetensorsFile::open(kFixtures + file);
  const TensorView& t = f->tensor(name);
  EXPECT_EQ(t.dtype, DType::F32);
  Logits l;
  l.S = t.shape.at(0);
  l.V = t.shape.at(1);
  l.values.assign(t.as<float>(), t.as<float>() + t.numel());
  return l;
}

std::vector<int32_t> read_tokens(const std::string& model) {
  auto f = SafetensorsFile::open(kFixtures + model + "/logits_transformers.safetensors");
  const TensorView& t = f->tensor("tokens");
  std::vector<int32_t> out;
  for (int64_t i = 0; i < t.numel(); ++i) out.push_back(static_cast<int32_t>(t.as<int64_t>()[i]));
  return out;
}

struct Agreement {
  double median_rel_l2 = 0;
  double top1 = 0;            // argmax agreement over all positions
  double decisive_top1 = 0;   // over positions whose reference top-2 margin is decisive
};

// A position is decisive when the reference's best logit beats the runner-up by more
// than a tenth of the logits' RMS: closer calls flip under bf16 rounding alone.
Agreement compare(const std::vector<float>& got, const Logits& ref) {
  std::vector<double> rel;
  int same = 0, decisive = 0, decisive_same = 0;
  for (int64_t s = 0; s < ref.S; ++s) {
    const float* g = got.data() + s * ref.V;
    const float* r = ref.values.data() + s * ref.V;
    double num = 0, den = 0;
    int64_t a = 0, b = 0;
    for (int64_t v = 0; v < ref.V; ++v) {
      num += (static_cast<double>(g[v]) - r[v]) * (static_cast<double>(g[v]) - r[v]);
      den += static_cast<double>(r[v]) * r[v];
      if (g[v] > g[a]) a = v;
      if (r[v] > r[b]) b = v;
    }
    double runner_up = -INFINITY;
    for (int64_t v = 0; v < ref.V; ++v)
      if (v != b) runner_up = std::max(runner_up, static_cast<double>(r[v]));
    rel.push_back(std::sqrt(num / den));
    same += a == b;
    if (r[b] - runner_up > 0.1 * std::sqrt(den / static_cast<double>(ref.V))) {
      ++decisive;
      decisive_same += a == b;
    }
  }
  std::sort(rel.begin(), rel.end());
  return {rel[rel.size() / 2], static_cast<double>(same) / static_cast<double>(ref.S),
          decisive ? static_cast<double>(decisive_same) / decisive : 1.0};
}

std::vector<float> run(const std::string& dir, ActQuantMode mode, const std::vector<int32_t>& tokens, int prefill) {
  LoadOptions lo;
  lo.show_progress = false;
  const Checkpoint ckpt = load_checkpoint(kFixtures + dir, lo);
  testing::CpuModel m(ckpt, ModelOptions{mode, 64});
  constexpr SequenceId kSequence = 0;
  m.model.create_sequence(kSequence);
  std::vector<float> logits;
  size_t at = 0;
  while (at < tokens.size()) {
    const size_t n = at == 0 ? static_cast<size_t>(prefill) : 1;
    const StepItem in{kSequence, static_cast<int64_t>(at), std::span<const int32_t>(tokens.data() + at, n), LogitsMode::kAll};
    m.model.forward(std::span<const StepItem>(&in, 1), logits);
    at += n;
  }
  return logits;
}

struct TransformersCase {
  std::string model, encoding;
};

class TransformersParity : public ::testing::TestWithParam<TransformersCase> {};

TEST_P(TransformersParity, WithinTransformersBf16Spread) {
  const auto& [model, encoding] = GetParam();
  const auto tokens = read_tokens(model);
  const std::string file = model + "/logits_transformers.safetensors";
  const Logits fp32 = read_logits(file, encoding + "_fp32");
  const Logits bf16 = read_logits(file, encoding + "_bf16");
  const Agreement spread = compare(bf16.values, fp32);
  const auto ours = run(model + "/" + encoding, ActQuantMode::kOff, tokens, static_cast<int>(tokens.size()));
  const Agreement got = compare(ours, fp32);
  std::printf("%s/%s vs transformers fp32: ours median rel L2 %.3e, top-1 %.3f (decisive %.3f); transformers bf16 %.3e, "
              "%.3f (%.3f)\n", model.c_str(), encoding.c_str(), got.median_rel_l2, got.top1, got.decisive_top1,
              spread.median_rel_l2, spread.top1, spread.decisive_top1);
  EXPECT_LE(got.median_rel_l2, spread.median_rel_l2);
  EXPECT_GE(got.decisive_top1, spread.decisive_top1);
  // The activation policy: BF16 checkpoints run bf16 activations and NVFP4 ones too on the
  // CPU, so their default numerics are exactly the --act-quant off ones.
  if (encoding != "native") {
    EXPECT_EQ(run(model + "/" + encoding, ActQuantMode::kAuto, tokens, static_cast<int>(tokens.size())), ours);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TransformersParity,
                         ::testing::Values(TransformersCase{"flash", "bf16"}, TransformersCase{"flash", "native"},
                                           TransformersCase{"flash", "nvfp4"}, TransformersCase{"pro", "native"},
                                           TransformersCase{"pro", "nvfp4"}),
                         [](const auto& info) { return info.param.model + "_" + info.param.encoding; });

class DeepSeekParity : public ::testing::TestWithParam<std::string> {};

TEST_P(DeepSeekParity, DefaultNumericsMatchTheOfficialReference) {
  const std::string model = GetParam();
  const auto tokens = read_tokens(model);
  const Logits spread_fp32 = read_logits(model + "/logits_transformers.safetensors", "native_fp32");
  const Logits spread_bf16 = read_logits(model + "/logits_transformers.safetensors", "native_bf16");
  const double noise = compare(spread_bf16.values, spread_fp32).median_rel_l2;
  for (const auto& [name, prefill] : {std::pair<std::string, int>{"prefill", 40}, {"decode", 17}}) {
    const Logits ref = read_logits(model + "/logits_deepseek.safetensors", name);
    const auto ours = run(model + "/native", ActQuantMode::kAuto, tokens, prefill);
    const Agreement got = compare(ours, ref);
    std::printf("%s %s vs DeepSeek reference: median rel L2 %.3e, top-1 %.3f (decisive %.3f); bf16 noise %.3e\n",
                model.c_str(), name.c_str(), got.median_rel_l2, got.top1, got.decisive_top1, noise);
    EXPECT_LE(got.median_rel_l2, noise / 2) << name;
    EXPECT_EQ(got.decisive_top1, 1.0) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DeepSeekParity, ::testing::Values("flash", "pro"));

}  // namespace
}  // namespace fp4serve
