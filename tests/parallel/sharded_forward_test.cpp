// The sharded forward (runtime/sharded_model.h: one thread per rank, CPU backends, the
// in-process communicator) against the whole model on one CPU backend, for tensor-parallel
// sizes 2, 4 and 8 (and 3, which splits unevenly) with and without expert parallelism: logits of a batched prefill of two
// sequences, then decode steps, compared position by position as the CUDA parity test
// compares devices (relative L2 error per position, top-1 agreement).
//
// Why a bound and not bit-identity: a rank's row-parallel projections (wo_b, the experts'
// w2) sum over its part of the input features, and the ranks' fp32 partial sums are added
// afterwards, which orders the additions differently; each rank's MoE op also rounds its
// partial output to bf16 (the op's contract on every backend) before the ranks' outputs are
// added. Those differences are bf16-sized; what the logits show of them depends on the model.
// The random test models are chaotic: moving one element in seven of each joined sum by one
// bf16 step (a whole model with testing::NudgingCollectives of sharded_test_script.h) moves their logits by percents
// (most in the native layout, whose FP8 activations amplify most), median over the positions.
// That nudge is measured per layout, and the sharded model must stay within 1.5x its median
// error and 0.1 of its top-1 agreement (measured: 0.6x to 0.95x of the median). The trained default
// model (models/default) gets the device-parity bound of issue 12 (median <= 1%, top-1 >= 95%
// of positions) and equal greedy text. One rank is the whole model, bit for bit.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>

#include "../checkpoint/checkpoint_test_support.h"
#include "sharded_test_script.h"
#include "base/error.h"
#include "checkpoint/test_model.h"
#include "model/model.h"
#include "runtime/engine.h"
#include "formats/number_formats.h"
#include "parallel/rank_weights.h"
#include "runtime/sharded_model.h"

namespace fp4serve {
namespace {

using ::testing::HasSubstr;
using testing::Agreement;
using testing::compare;
using testing::Runner;
using testing::run_script;

const std::string kDefaultModel = FP4SERVE_SOURCE_DIR "/models/default";

// Checkpoints this process wrote, removed when it exits (ctest runs each test in its own
// process, several at once: each writes its own).
struct TempCheckpoints {
  std::map<OutputLayout, std::string> dirs;
  ~TempCheckpoints() {
    for (const auto& [layout, dir] : dirs) std::filesystem::remove_all(dir);
  }
};

// A tiny-tp checkpoint of `layout`, written once per process.
const std::string& tiny_tp_dir(OutputLayout layout) {
  static TempCheckpoints written;
  std::map<OutputLayout, std::string>& dirs = written.dirs;
  auto it = dirs.find(layout);
  if (it != dirs.end()) return it->second;
  const std::string dir = ::testing::TempDir() + "sharded_forward_" + std::to_string(getpid()) + "_" +
                          std::string(output_layout_name(layout));
  std::filesystem::remove_all(dir);
  TestModelOptions o;
  o.layout = layout;
  o.preset = "tiny-tp";
  o.seed = 11;
  write_test_model(dir, o);
  return dirs.emplace(layout, dir).first->second;
}

Checkpoint load(const std::string& dir) {
  LoadOptions o = testing::quiet();
  o.page_in = false;
  return load_checkpoint(dir, o);
}

std::vector<float> whole_model_logits(const Checkpoint& ck, ActQuantMode act) {
  const auto backend = make_backend(DeviceKind::kCpu);
  Model model(*backend, ck.config, ck.linears, ck.tensors, ModelOptions{act, 64});
  return run_script({[&](SequenceId id) { model.create_sequence(id); },
                     [&](std::span<const StepItem> items, std::vector<float>& out) { model.forward(items, out); }},
                    ck.config.vocab_size);
}

std::vector<float> sharded_logits(const Checkpoint& ck, int ranks, bool expert_parallel, ActQuantMode act) {
  ShardedModelOptions o;
  o.parallel = ParallelConfig{ranks, expert_parallel};
  o.model = ModelOptions{act, 64};
  o.max_step_tokens = 64;
  ShardedModel model(ck, o);
  EXPECT_EQ(model.size(), ranks);
  return run_script({[&](SequenceId id) { model.on_every_rank([&](int, Model& m) { m.create_sequence(id); }); },
                     [&](std::span<const StepItem> items, std::vector<float>& out) { model.forward(items, out); }},
                    ck.config.vocab_size);
}

// Per layout, the whole model's logits and how far a nudge of the joins moves them (the
// model's own sensitivity, which bounds what any change of summation order may show).
struct Reference {
  std::vector<float> whole;
  Agreement nudged;
};

const Reference& reference(OutputLayout layout) {
  static std::map<OutputLayout, Reference> cache;
  auto it = cache.find(layout);
  if (it != cache.end()) return it->second;
  const Checkpoint ck = load(tiny_tp_dir(layout));
  Reference r;
  r.whole = whole_model_logits(ck, ActQuantMode::kAuto);
  const RankWeights w = read_rank_weights(ck, plan_shards(ck, ParallelConfig{1, false}), 0, copy_runs);
  testing::NudgingCollectives nudge(ck.config.vocab_size);
  const auto backend = make_backend(DeviceKind::kCpu);
  Model model(*backend, w.config, w.linears, w.tensors, ModelOptions{ActQuantMode::kAuto, 64}, w.shard(&nudge));
  const std::vector<float> nudged =
      run_script({[&](SequenceId id) { model.create_sequence(id); },
                  [&](std::span<const StepItem> items, std::vector<float>& out) { model.forward(items, out); }},
                 ck.config.vocab_size);
  r.nudged = compare(r.whole, nudged, ck.config.vocab_size);
  std::printf("  %s whole model, joins nudged: median rel %.2e, max %.2e, top-1 %.3f\n",
              std::string(output_layout_name(layout)).c_str(), r.nudged.median_rel, r.nudged.max_rel, r.nudged.top1);
  return cache.emplace(layout, std::move(r)).first->second;
}

struct Case {
  OutputLayout layout;
  int ranks;
  bool expert_parallel;
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string layout(output_layout_name(info.param.layout));
  std::replace(layout.begin(), layout.end(), '-', '_');
  return layout + "_tp" + std::to_string(info.param.ranks) + (info.param.expert_parallel ? "_ep" : "");
}

class RandomModel : public ::testing::TestWithParam<Case> {};

TEST_P(RandomModel, ShardedLogitsWithinTheBound) {
  const Case c = GetParam();
  const Checkpoint ck = load(tiny_tp_dir(c.layout));
  const Reference& ref = reference(c.layout);
  const std::vector<float> split = sharded_logits(ck, c.ranks, c.expert_parallel, ActQuantMode::kAuto);
  const Agreement a = compare(ref.whole, split, ck.config.vocab_size);
  std::printf("  %s tp %d%s: median rel %.2e, max %.2e, top-1 %.3f\n", std::string(output_layout_name(c.layout)).c_str(),
              c.ranks, c.expert_parallel ? " ep" : "", a.median_rel, a.max_rel, a.top1);
  EXPECT_GE(ref.nudged.median_rel, 1e-3) << "the random model no longer amplifies bf16-sized differences; tighten the bound";
  EXPECT_LE(a.median_rel, 1.5 * ref.nudged.median_rel);
  EXPECT_GE(a.top1, ref.nudged.top1 - 0.1);
}

std::vector<Case> random_cases() {
  std::vector<Case> out;
  for (OutputLayout layout : {OutputLayout::kNative, OutputLayout::kNvfp4, OutputLayout::kBF16})
    for (int ranks : {2, 4, 8})
      for (bool ep : {false, true}) out.push_back({layout, ranks, ep});
  // Uneven: 4 groups, 8 experts, 1024 columns and 512 vocabulary rows over 3 ranks.
  for (OutputLayout layout : {OutputLayout::kNative, OutputLayout::kBF16})
    for (bool ep : {false, true}) out.push_back({layout, 3, ep});
  return out;
}

INSTANTIATE_TEST_SUITE_P(TinyTp, RandomModel, ::testing::ValuesIn(random_cases()), case_name);

TEST(ShardedForward, OneRankIsTheWholeModelBitForBit) {
  // One rank still runs every join (sums of one, the vocabulary gather, the zero embedding
  // row), so this pins the machinery itself: nothing may change a value.
  const Checkpoint ck = load(tiny_tp_dir(OutputLayout::kNative));
  const std::vector<float> whole = whole_model_logits(ck, ActQuantMode::kAuto);
  EXPECT_EQ(sharded_logits(ck, 1, true, ActQuantMode::kAuto), whole);
}

class TrainedModel : public ::testing::TestWithParam<std::pair<int, bool>> {};

TEST_P(TrainedModel, ShardedLogitsWithinTheDeviceParityBound) {
  const auto [ranks, ep] = GetParam();
  const Checkpoint ck = load(kDefaultModel);
  static const std::vector<float> whole = whole_model_logits(ck, ActQuantMode::kAuto);
  const Agreement a = compare(whole, sharded_logits(ck, ranks, ep, ActQuantMode::kAuto), ck.config.vocab_size);
  std::printf("  default model tp %d%s: median rel %.2e, max %.2e, top-1 %.3f\n", ranks, ep ? " ep" : "", a.median_rel,
              a.max_rel, a.top1);
  EXPECT_LE(a.median_rel, 0.01);
  EXPECT_GE(a.top1, 0.95);
}

INSTANTIATE_TEST_SUITE_P(Default, TrainedModel,
                         ::testing::Values(std::pair{2, false}, std::pair{2, true}, std::pair{4, false}, std::pair{4, true}));

// Greedy decoding through the engine (what generate and serve run): the same text.
std::vector<int32_t> greedy(int ranks, bool expert_parallel, int tokens) {
  EngineOptions o;
  o.device = DeviceChoice::kCpu;
  o.reserve_tokens = 64;
  o.show_progress = false;
  o.announce_device = false;
  o.tensor_parallel_size = ranks;
  o.expert_parallel = expert_parallel;
  const auto engine = Engine::open(kDefaultModel, o);
  std::vector<int32_t> seq{0, 470, 1767, 291};  // BOS "The history of" in the default tokenizer
  engine->create_sequence(7);
  std::vector<float> logits;
  size_t fed = 0;
  for (int i = 0; i < tokens; ++i) {
    logits.clear();
    const std::span<const int32_t> fresh(seq.data() + fed, seq.size() - fed);
    const StepItem item{7, static_cast<int64_t>(fed), fresh, LogitsMode::kLast};
    engine->step(std::span<const StepItem>(&item, 1), logits);
    fed = seq.size();
    seq.push_back(static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
  }
  engine->free_sequence(7);
  return std::vector<int32_t>(seq.begin() + 4, seq.end());
}

TEST(ShardedForward, GreedyTextEqualsTheWholeModels) {
  const std::vector<int32_t> whole = greedy(1, false, 24);
  for (const auto& [ranks, ep] : {std::pair{2, false}, std::pair{2, true}, std::pair{4, false}, std::pair{4, true}})
    EXPECT_EQ(greedy(ranks, ep, 24), whole) << "tp " << ranks << (ep ? " ep" : "");
}

TEST(ShardedForward, RefusesMoreRanksThanHeadsNamingTheTensor) {
  // tiny-tp: 8 heads in 4 groups; 16 ranks would leave ranks without a head.
  const Checkpoint ck = load(tiny_tp_dir(OutputLayout::kNative));
  ShardedModelOptions o;
  o.parallel = ParallelConfig{16, false};
  try {
    ShardedModel model(ck, o);
    ADD_FAILURE() << "16 ranks were accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("attn.wq_b"));
    EXPECT_THAT(e.what(), HasSubstr("holds none of it"));
  }
}

TEST(ShardedForward, RefusesACutThroughFp8ActivationBlocksBeforeReading) {
  // NVFP4 experts split in 16-wide blocks: 1024 columns over 3 ranks is 352, 336, 336, which
  // FP8 activations (--act-quant fp8) would have to quantize across the whole model's blocks.
  const Checkpoint ck = load(tiny_tp_dir(OutputLayout::kNvfp4));
  ShardedModelOptions o;
  o.parallel = ParallelConfig{3, false};
  o.model = ModelOptions{ActQuantMode::kFp8, 64};
  try {
    ShardedModel model(ck, o);
    ADD_FAILURE() << "a cut through the activation blocks was accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("ffn."));
    EXPECT_THAT(e.what(), HasSubstr("cut the 128-wide blocks its FP8 activations are quantized in"));
  }
  // The same split with bf16 activations runs.
  o.model = ModelOptions{ActQuantMode::kAuto, 64};
  EXPECT_EQ(ShardedModel(ck, o).size(), 3);
}

TEST(ShardedForward, RefusesTheMtpBlockUnderTensorParallelism) {
  EngineOptions o;
  o.device = DeviceChoice::kCpu;
  o.reserve_tokens = 16;
  o.show_progress = false;
  o.announce_device = false;
  o.tensor_parallel_size = 2;
  const auto engine = Engine::open(tiny_tp_dir(OutputLayout::kBF16), o);
  try {
    engine->model();
    ADD_FAILURE() << "the model of a split engine was handed out";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("split over 2 ranks"));
  }
}

TEST(ShardedForward, CliTakesTheFlagsAndRefusesABadSize) {
  const testing::CliResult ok =
      testing::fp4serve("generate " + kDefaultModel + " --tokens 0,470,1767,291 --max-tokens 4 --device cpu "
                        "--tensor-parallel-size 2 --enable-expert-parallel");
  EXPECT_EQ(ok.status, 0) << ok.output;
  EXPECT_THAT(ok.output, HasSubstr("device: 2 ranks (tensor parallel, expert parallel)"));
  const testing::CliResult zero = testing::fp4serve("logits " + kDefaultModel + " --tokens 1 --out /dev/null --tp 0");
  EXPECT_NE(zero.status, 0);
  EXPECT_THAT(zero.output, HasSubstr("--tensor-parallel-size 0"));
  const testing::CliResult eight = testing::fp4serve("logits " + kDefaultModel + " --tokens 1 --out /dev/null --tp 8");
  EXPECT_NE(eight.status, 0);
  EXPECT_THAT(eight.output, HasSubstr("attn.wq_b"));
  // Speculation over ranks is refused with the flags, before the checkpoint is read.
  const testing::CliResult spec = testing::fp4serve(
      "generate " + kDefaultModel + " --tokens 1 --max-tokens 2 --tp 2 --speculative-config '{\"method\": \"mtp\", "
      "\"num_speculative_tokens\": 1}'");
  EXPECT_NE(spec.status, 0);
  EXPECT_THAT(spec.output, HasSubstr("--speculative-config with --tensor-parallel-size 2"));
}

}  // namespace
}  // namespace fp4serve
