// The DSpark draft (src/model/dspark_draft.cpp: the target taps, the context rings, the block
// with block_attention, the head and the Markov bias) on the CUDA backend against the CPU
// backend, on a tiny DSpark model in the BF16 and native layouts, and speculative rollback
// on the GPU: the state after a rejected verification and the replay equals the state of a
// sequence that never saw the rejected tokens; greedy speculative generation keeps the
// tokens of generation without it. Bound as cuda_model_test.cpp's: relative
// error <= 1%, argmax agreement on every drafted position but one.
#ifdef FP4SERVE_HAVE_CUDA
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <memory>
#include <vector>

#include "../model/model_test_checkpoints.h"
#include "backend/cuda/cuda_backend.h"
#include "cuda_test_support.h"
#include "model/model.h"

namespace fp4serve {
namespace {

using cuda_testing::run_cli;

double relative_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (static_cast<double>(b[i]) - a[i]) * (static_cast<double>(b[i]) - a[i]);
    norm += static_cast<double>(a[i]) * a[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-30));
}

struct DraftRun {
  std::vector<float> taps, logits, hidden, bias;
};

DraftRun run_draft(Backend& backend, const Checkpoint& ckpt) {
  Model model(backend, ckpt.config, ckpt.linears, ckpt.tensors);
  const std::vector<int32_t> p1 = {5, 17, 99, 3, 42, 7, 200, 31, 8, 150, 64}, p2 = {9, 1, 77, 123, 45, 6};
  model.create_sequence(1);
  model.create_sequence(2);
  const StepItem items[] = {{1, 0, p1, LogitsMode::kLast}, {2, 0, p2, LogitsMode::kLast}};
  DraftRun r;
  std::vector<float> logits;
  model.forward(items, logits);
  r.taps = model.dspark()->read_taps();
  const DraftContextItem context[] = {{1, 0, 0, 11}, {2, 0, 11, 6}};
  model.dspark_context(context);
  const DraftBlockItem blocks[] = {{1, 11, 212}, {2, 6, 4}};
  model.dspark_draft(blocks, r.logits, r.hidden);
  const std::vector<int32_t> prev = {212, 0, 255};
  model.dspark()->markov_bias(prev, r.bias);
  return r;
}

TEST(CudaDspark, DraftMatchesTheCpuBackend) {
  FP4SERVE_REQUIRE_GPU();
  const ModelConfig config = with_draft(testing::tiny_config({0, 4, 0}, 1, 0), DraftKind::kDSpark);
  for (OutputLayout layout : {OutputLayout::kBF16, OutputLayout::kNative}) {
    const Checkpoint ckpt = testing::random_checkpoint(config, layout, 1601);
    auto cpu = make_backend(DeviceKind::kCpu);
    auto gpu = make_cuda_backend();
    const DraftRun c = run_draft(*cpu, ckpt), g = run_draft(*gpu, ckpt);
    const std::string what(output_layout_name(layout));
    EXPECT_LE(relative_l2(c.taps, g.taps), 0.01) << what << ": taps";
    EXPECT_LE(relative_l2(c.hidden, g.hidden), 0.01) << what << ": hidden";
    EXPECT_LE(relative_l2(c.logits, g.logits), 0.01) << what << ": logits";
    EXPECT_LE(relative_l2(c.bias, g.bias), 1e-4) << what << ": Markov bias";
    const int64_t V = config.vocab_size, rows = static_cast<int64_t>(c.logits.size()) / V;
    int64_t agree = 0;
    for (int64_t t = 0; t < rows; ++t) {
      const float* a = c.logits.data() + t * V;
      const float* b = g.logits.data() + t * V;
      agree += (std::max_element(a, a + V) - a) == (std::max_element(b, b + V) - b);
    }
    EXPECT_GE(agree, rows - 1) << what;
  }
}

TEST(CudaDspark, RollbackOnTheGpuLeavesTheStateOfTheAcceptedPrefix) {
  FP4SERVE_REQUIRE_GPU();
  const ModelConfig config = with_draft(testing::tiny_config({0, 4, 16, 4}, 1, 0), DraftKind::kDSpark);
  const Checkpoint ckpt = testing::random_checkpoint(config, OutputLayout::kNative, 77);
  auto gpu = make_cuda_backend();
  Model a(*gpu, ckpt.config, ckpt.linears, ckpt.tensors), b(*gpu, ckpt.config, ckpt.linears, ckpt.tensors);
  std::vector<int32_t> prompt;
  for (int i = 0; i < 13; ++i) prompt.push_back(2 + (i * 29) % 250);
  const std::vector<int32_t> verified = {10, 20, 30, 40, 50, 60};
  std::vector<float> logits;
  for (Model* m : {&a, &b}) {
    m->create_sequence(1);
    const StepItem p{1, 0, prompt, LogitsMode::kLast};
    m->forward(std::span<const StepItem>(&p, 1), logits);
  }
  a.save_for_rollback(1);
  const StepItem all{1, 13, verified, LogitsMode::kAll};
  a.forward(std::span<const StepItem>(&all, 1), logits);
  a.roll_back(1);
  const StepItem kept{1, 13, std::span<const int32_t>(verified.data(), 3), LogitsMode::kNone};
  a.forward(std::span<const StepItem>(&kept, 1), logits);
  b.forward(std::span<const StepItem>(&kept, 1), logits);
  EXPECT_EQ(a.read_state(1), b.read_state(1));
}

// The generated ids: the line after "device: ...".
std::string generated_line(const std::string& output) {
  std::string rest = output.rfind("device: ", 0) == 0 ? output.substr(output.find('\n') + 1) : output;
  return rest.substr(0, rest.find('\n'));
}

// Speculative decoding on the GPU: greedy `generate --device cuda` gives the same tokens with
// --speculative-config as without, on every layout and both drafts.
TEST(CudaDspark, GreedySpeculationKeepsTheTokensOnEveryLayout) {
  FP4SERVE_REQUIRE_GPU();
  for (const std::string draft : {"dspark", "mtp"})
    for (const std::string layout : {"native", "nvfp4", "transformers-saved", "bf16"}) {
      const std::string dir = ::testing::TempDir() + "cuda_spec_" + draft + "_" + layout, what = draft + " " + layout;
      std::string log;
      ASSERT_EQ(run_cli("make-test-model " + dir + " --layout " + layout + " --draft " + draft + " --seed 12", &log), 0) << log;
      const std::string args = "generate " + dir + " --device cuda --tokens 5,6,7,8,9,10,11 --max-tokens 24";
      const std::string spec = draft == "dspark" ? R"('{"method": "dspark", "num_speculative_tokens": 5}')"
                                                 : R"('{"method": "mtp", "num_speculative_tokens": 1}')";
      std::string plain, speculative;
      ASSERT_EQ(run_cli(args, &plain), 0) << what << ":\n" << plain;
      ASSERT_EQ(run_cli(args + " --speculative-config " + spec, &speculative), 0) << what << ":\n" << speculative;
      EXPECT_EQ(generated_line(speculative), generated_line(plain)) << what;
    }
}

}  // namespace
}  // namespace fp4serve
#endif
