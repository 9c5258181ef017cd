// The whole model on the CUDA backend against the CPU backend at the same numeric policy
// (--act-quant auto, fp8, off), in process: the script of sharded_test_script.h (a batched
// prefill of two sequences with every position's logits, then decode steps of both), on
// every layout make-test-model writes, every parity fixture and the trained default model;
// and `fp4serve logits --device cuda` writing the CPU's tensor.
//
// The bound: median relative logit error <= 1% and top-1 agreement >= 99% of positions.
// The trained default model is held to it as it is. The random test models cannot be held
// to it by anything that is not bit-identical to the CPU backend: their logits move by
// percents when differences of rounding size enter (measured here per model and policy: a
// one-rank model whose joins move one element in seven by one bf16 step, the "nudge"; most
// with FP8 activations, where a bf16 step across an E4M3 rounding boundary moves a value by
// up to 1/16). The CPU backend's own ISA levels (FP4SERVE_CPU_ISA=scalar against the
// default) already differ by 0.5-1.3% (off) and 2.8-4.1% (fp8) on these models. On the GPU
// the Hopper GEMMs sum in another order, and FP8 tensor cores accumulate with about 14 bits
// (src/backend/cuda/skinny_wgmma.cuh). So where the nudge exceeds the bound, a model is held
// to 1.5x the nudge's median error and to the nudge's top-1 agreement less 0.1, as the
// sharded forward is (tests/parallel/sharded_forward_test.cpp).
#ifdef FP4SERVE_HAVE_CUDA
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "../parallel/sharded_test_script.h"
#include "backend/backend.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/test_model.h"
#include "cuda_test_support.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "parallel/rank_weights.h"
#include "parallel/shard_reader.h"

namespace fp4serve {
namespace {

using cuda_testing::run_cli;

using testing::Agreement;
using testing::compare;

constexpr double kMedianBound = 0.01, kTop1Bound = 0.99;

Checkpoint load(const std::string& dir) {
  LoadOptions o;
  o.show_progress = false;
  o.page_in = false;
  return load_checkpoint(dir, o);
}

std::vector<float> script_logits(DeviceKind device, const Checkpoint& ck, ActQuantMode act) {
  const auto backend = make_backend(device);
  Model model(*backend, ck.config, ck.linears, ck.tensors, ModelOptions{act, 64});
  return testing::run_script({[&](SequenceId id) { model.create_sequence(id); },
                              [&](std::span<const StepItem> items, std::vector<float>& out) { model.forward(items, out); }},
                             ck.config.vocab_size);
}

std::vector<float> nudged_cpu_logits(const Checkpoint& ck, ActQuantMode act) {
  const RankWeights w = read_rank_weights(ck, plan_shards(ck, ParallelConfig{1, false}), 0, copy_runs);
  testing::NudgingCollectives nudge(ck.config.vocab_size);
  const auto backend = make_backend(DeviceKind::kCpu);
  Model model(*backend, w.config, w.linears, w.tensors, ModelOptions{act, 64}, w.shard(&nudge));
  return testing::run_script({[&](SequenceId id) { model.create_sequence(id); },
                              [&](std::span<const StepItem> items, std::vector<float>& out) { model.forward(items, out); }},
                             ck.config.vocab_size);
}

const char* policy_name(ActQuantMode act) {
  return act == ActQuantMode::kAuto ? "auto" : act == ActQuantMode::kFp8 ? "fp8" : "off";
}

// GPU against CPU on one checkpoint and policy; `sensitive`: a random model, held to the
// nudge where the nudge exceeds the bound.
void check_model(const std::string& dir, ActQuantMode act, bool sensitive) {
  const std::string what = dir + " --act-quant " + policy_name(act);
  const Checkpoint ck = load(dir);
  const int64_t vocab = ck.config.vocab_size;
  const std::vector<float> cpu = script_logits(DeviceKind::kCpu, ck, act);
  const Agreement gpu = compare(cpu, script_logits(DeviceKind::kCuda, ck, act), vocab);
  double median_bound = kMedianBound, top1_bound = kTop1Bound;
  std::string nudge_text;
  if (sensitive) {
    const Agreement nudged = compare(cpu, nudged_cpu_logits(ck, act), vocab);
    median_bound = std::max(kMedianBound, 1.5 * nudged.median_rel);
    top1_bound = std::min(kTop1Bound, nudged.top1 - 0.1);
    char buf[96];
    std::snprintf(buf, sizeof buf, " (nudge: median %.2e, top-1 %.3f)", nudged.median_rel, nudged.top1);
    nudge_text = buf;
  }
  std::printf("  %-64s median rel %.2e, max %.2e, top-1 %.3f%s\n", what.c_str(), gpu.median_rel, gpu.max_rel, gpu.top1,
              nudge_text.c_str());
  EXPECT_LE(gpu.median_rel, median_bound) << what;
  EXPECT_GE(gpu.top1, top1_bound) << what;
}

constexpr ActQuantMode kPolicies[] = {ActQuantMode::kAuto, ActQuantMode::kFp8, ActQuantMode::kOff};

TEST(CudaModel, LogitsMatchTheCpuOnEveryTestModelLayout) {
  FP4SERVE_REQUIRE_GPU();
  for (const OutputLayout layout :
       {OutputLayout::kNative, OutputLayout::kNvfp4, OutputLayout::kTransformersSaved, OutputLayout::kBF16}) {
    const std::string dir = ::testing::TempDir() + "cuda_model_" + std::to_string(getpid()) + "_" +
                            std::string(output_layout_name(layout));
    TestModelOptions o;
    o.layout = layout;
    o.seed = 11;
    write_test_model(dir, o);
    for (const ActQuantMode act : kPolicies) check_model(dir, act, /*sensitive=*/true);
    std::filesystem::remove_all(dir);
  }
}

TEST(CudaModel, LogitsMatchTheCpuOnTheParityFixtures) {
  FP4SERVE_REQUIRE_GPU();
  for (const std::string m : {"flash/native", "flash/nvfp4", "flash/bf16", "pro/native", "pro/nvfp4"})
    check_model(std::string(FP4SERVE_SOURCE_DIR) + "/tests/fixtures/parity/" + m, ActQuantMode::kAuto, /*sensitive=*/true);
}

TEST(CudaModel, LogitsMatchTheCpuOnTheTrainedDefaultModel) {
  FP4SERVE_REQUIRE_GPU();
  for (const ActQuantMode act : kPolicies)
    check_model(std::string(FP4SERVE_SOURCE_DIR) + "/models/default", act, /*sensitive=*/false);
}

// `logits --device cuda` writes the tensor `logits` [S, V] the CPU writes.
std::vector<float> logits_file(const std::string& path, std::vector<int64_t>* shape) {
  const auto file = SafetensorsFile::open(path);
  const TensorView& t = file->tensor("logits");
  *shape = t.shape;
  return std::vector<float>(t.as<float>(), t.as<float>() + t.numel());
}

TEST(CudaModel, LogitsCommandWritesTheCpuTensor) {
  FP4SERVE_REQUIRE_GPU();
  const std::string model = std::string(FP4SERVE_SOURCE_DIR) + "/models/default";
  std::vector<float> out[2];
  std::vector<int64_t> shape[2];
  for (int d = 0; d < 2; ++d) {
    const std::string file = ::testing::TempDir() + "cuda_logits_" + std::to_string(getpid()) + (d ? "_cuda" : "_cpu");
    std::string log;
    ASSERT_EQ(run_cli("logits " + model + " --device " + (d ? "cuda" : "cpu") +
                          " --tokens 0,470,1767,291,1200,77,3021,15,640,9,88,2048 --out " + file,
                      &log),
              0)
        << log;
    out[d] = logits_file(file, &shape[d]);
    std::filesystem::remove(file);
  }
  ASSERT_EQ(shape[0], shape[1]);
  ASSERT_EQ(shape[0].size(), 2u);
  EXPECT_EQ(shape[0][0], 12);
  const Agreement a = compare(out[0], out[1], shape[0][1]);
  std::printf("  logits --device cuda vs cpu: median rel %.2e, top-1 %.3f\n", a.median_rel, a.top1);
  EXPECT_LE(a.median_rel, kMedianBound);
  EXPECT_GE(a.top1, kTop1Bound);
}

}  // namespace
}  // namespace fp4serve
#endif
