// A rank of the sharded forward (runtime/sharded_model.h, CPU ranks over the in-process
// communicator) that fails mid-step must not leave the others waiting in their collectives:
// the step returns an Error naming the failing rank and its message within seconds, and the
// model refuses later steps with that cause. A broken request, caught before any rank
// starts, leaves the group usable. Each step runs under a watchdog: a hang ends the test
// binary with a message instead of stalling the suite.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <string>

#include "../checkpoint/checkpoint_test_support.h"
#include "base/error.h"
#include "checkpoint/test_model.h"
#include "runtime/sharded_model.h"

namespace fp4serve {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

constexpr int kRanks = 4;
const std::vector<int32_t> kPrompt = {3, 17, 250, 9};

struct TinyTpCheckpoint {
  TinyTpCheckpoint() : dir(::testing::TempDir() + "sharded_failure_" + std::to_string(getpid())) {
    std::filesystem::remove_all(dir);
    TestModelOptions o;
    o.layout = OutputLayout::kBF16;
    o.preset = "tiny-tp";
    o.seed = 5;
    write_test_model(dir, o);
    LoadOptions lo = testing::quiet();
    lo.page_in = false;
    checkpoint = load_checkpoint(dir, lo);
  }
  ~TinyTpCheckpoint() { std::filesystem::remove_all(dir); }
  std::string dir;
  Checkpoint checkpoint;
};

std::unique_ptr<ShardedModel> open_model(const Checkpoint& ck) {
  ShardedModelOptions o;
  o.parallel = ParallelConfig{kRanks, false};
  o.model = ModelOptions{ActQuantMode::kAuto, 64};
  o.max_step_tokens = 64;
  return std::make_unique<ShardedModel>(ck, o);
}

// fn on a thread of its own; its error (if any) returned as a message, "" when it returned.
// A step still running after 20 s is the hang under test: the binary ends, naming it.
std::string within_seconds(const char* what, const std::function<void()>& fn) {
  auto done = std::async(std::launch::async, [&]() -> std::string {
    try {
      fn();
      return "";
    } catch (const std::exception& e) {
      return e.what();
    }
  });
  if (done.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    std::fprintf(stderr, "%s: still waiting after 20 s (ranks hang)\n", what);
    std::_Exit(1);
  }
  return done.get();
}

StepItem prompt_item(SequenceId id) { return StepItem{id, 0, kPrompt, LogitsMode::kLast}; }

TEST(ShardedFailure, ARequestBadOnOneRankEndsTheStepOnEveryRank) {
  const TinyTpCheckpoint ck;
  auto model = open_model(ck.checkpoint);
  // Sequence 2 exists on every rank but rank 2 (as after an allocation that failed there
  // alone): rank 0's host check passes, rank 2's forward throws while the others wait for
  // it in their first collective.
  model->on_every_rank([](int r, Model& m) {
    m.create_sequence(1);
    if (r != 2) m.create_sequence(2);
  });
  std::vector<float> logits;
  const StepItem bad[] = {prompt_item(2)};
  const auto start = Clock::now();
  const std::string error = within_seconds("a step rank 2 cannot run", [&] { model->forward(bad, logits); });
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_THAT(error, HasSubstr("a step failed on rank 2 of 4"));
  EXPECT_THAT(error, HasSubstr("unknown sequence 2"));
  EXPECT_THAT(model->broken(), HasSubstr("rank 2 of 4"));
  // A later step, valid on every rank, is refused at once with the cause.
  const StepItem good[] = {prompt_item(1)};
  const std::string later = within_seconds("a step after the failure", [&] { model->forward(good, logits); });
  EXPECT_THAT(later, HasSubstr("runs no more steps"));
  EXPECT_THAT(later, HasSubstr("unknown sequence 2"));
}

TEST(ShardedFailure, AnErrorThrownMidStepOnOneRankReachesTheOthers) {
  const TinyTpCheckpoint ck;
  auto model = open_model(ck.checkpoint);
  model->on_every_rank([](int, Model& m) { m.create_sequence(1); });
  // Rank 3 fails after the others have started the step (and entered its collectives), as an
  // allocation failure in the middle of a layer would.
  const StepItem items[] = {prompt_item(1)};
  std::vector<float> logits;
  const std::string error = within_seconds("a step rank 3 abandons", [&] {
    model->run_step([&](int r, Model& m) {
      std::vector<float> out;
      if (r == 3) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        fail("injected: out of device memory in layer 1");
      }
      m.forward(items, out);
    });
  });
  EXPECT_THAT(error, HasSubstr("a step failed on rank 3 of 4: injected: out of device memory in layer 1"));
  const std::string later = within_seconds("a step after the failure", [&] { model->forward(items, logits); });
  EXPECT_THAT(later, HasSubstr("rank 3 of 4"));
}

TEST(ShardedFailure, ABrokenRequestIsRefusedBeforeAnyRankStartsAndTheGroupGoesOn) {
  const TinyTpCheckpoint ck;
  auto model = open_model(ck.checkpoint);
  model->on_every_rank([](int, Model& m) { m.create_sequence(1); });
  std::vector<float> logits;
  const std::vector<int32_t> outside = {3, 100000};
  const StepItem unknown[] = {prompt_item(7)};
  const StepItem bad_token[] = {StepItem{1, 0, outside, LogitsMode::kLast}};
  const StepItem wrong_position[] = {StepItem{1, 2, kPrompt, LogitsMode::kLast}};
  EXPECT_THAT(within_seconds("unknown sequence", [&] { model->forward(unknown, logits); }),
              HasSubstr("unknown sequence 7"));
  EXPECT_THAT(within_seconds("token outside", [&] { model->forward(bad_token, logits); }),
              HasSubstr("token id 100000 outside the vocabulary"));
  EXPECT_THAT(within_seconds("wrong position", [&] { model->forward(wrong_position, logits); }),
              HasSubstr("is at position 0, the step says 2"));
  EXPECT_EQ(model->broken(), "");
  const StepItem good[] = {prompt_item(1)};
  EXPECT_EQ(within_seconds("a valid step", [&] { model->forward(good, logits); }), "");
  EXPECT_EQ(logits.size(), static_cast<size_t>(ck.checkpoint.config.vocab_size));
}

}  // namespace
}  // namespace fp4serve
