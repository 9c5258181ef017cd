// The scheduler over the deterministic fake model. The reference for every
// output is the model driven directly, one sequence at a time, one token per
// step (no scheduler involved): batching must not change a single token.
#include "runtime/scheduler.h"

#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <set>
#include <thread>

#include "runtime/engine_fake_model.h"

namespace fp4serve::runtime {
namespace {

using namespace std::chrono_literals;

FakeModelOptions small_model(std::chrono::microseconds step_delay = 0us) {
  FakeModelOptions o;
  o.vocab_size = 97;
  o.max_context = 256;
  o.eos_token = 1;
  o.state_bytes_per_token = 256;
  o.step_delay = step_delay;
  return o;
}

// A request with the default sampling (temperature 1, seed 0).
GenerationRequest request(std::vector<int32_t> prompt, int64_t max_new_tokens) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_new_tokens = max_new_tokens;
  return r;
}

void wait_for_first_token(GenerationStream& stream) {
  while (stream.wait(100ms).tokens.empty()) {
  }
}

// Direct reference: prefill the prompt token by token, then sample with a
// fresh sampler of the same parameters.
std::vector<int32_t> reference_generation(const FakeModelOptions& options, const GenerationRequest& r) {
  FakeStepModel model(options);
  model.create_sequence(7);
  std::vector<float> logits(options.vocab_size);
  SequenceSampler sampler(r.sampling, r.prompt);
  std::vector<int32_t> out;
  int64_t position = 0;
  for (size_t i = 0; i < r.prompt.size(); ++i) {
    StepItem w{7, position++, std::span<const int32_t>(&r.prompt[i], 1), i + 1 == r.prompt.size() ? LogitsMode::kLast : LogitsMode::kNone};
    model.step(std::span<const StepItem>(&w, 1), logits);
  }
  while (static_cast<int64_t>(out.size()) < r.max_new_tokens) {
    int32_t t = sampler.sample(logits).token;
    out.push_back(t);
    if (std::find(r.stop_token_ids.begin(), r.stop_token_ids.end(), t) != r.stop_token_ids.end()) break;
    if (position + 1 >= options.max_context) break;
    StepItem w{7, position++, std::span<const int32_t>(&out.back(), 1), LogitsMode::kLast};
    model.step(std::span<const StepItem>(&w, 1), logits);
  }
  return out;
}

struct Collected {
  std::vector<int32_t> tokens;
  Finish finish;
};

Collected collect(GenerationStream& stream, std::chrono::milliseconds limit = 20s) {
  Collected c;
  auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    auto u = stream.wait(100ms);
    for (auto& t : u.tokens) c.tokens.push_back(t.token);
    if (u.finish) {
      c.finish = *u.finish;
      return c;
    }
  }
  ADD_FAILURE() << "stream did not finish";
  return c;
}

GenerationRequest random_request(std::mt19937& rng, int vocab, bool sampled) {
  GenerationRequest r;
  int length = 1 + static_cast<int>(rng() % 40);
  for (int i = 0; i < length; ++i) r.prompt.push_back(2 + static_cast<int32_t>(rng() % (vocab - 2)));
  r.max_new_tokens = 1 + static_cast<int>(rng() % 30);
  r.stop_token_ids = {1};
  if (sampled) {
    r.sampling.temperature = 0.8;
    r.sampling.top_p = 0.95;
    r.sampling.seed = rng();
  } else {
    r.sampling.temperature = 0;
  }
  return r;
}

// Records the shape of every step so tests can see batching happen.
class RecordingModel : public StepModel {
 public:
  explicit RecordingModel(StepModel& inner) : inner_(inner) {}
  int vocab_size() const override { return inner_.vocab_size(); }
  int64_t max_context() const override { return inner_.max_context(); }
  void create_sequence(SequenceId id) override { inner_.create_sequence(id); }
  void free_sequence(SequenceId id) override { inner_.free_sequence(id); }
  size_t sequence_state_bytes() const override { return inner_.sequence_state_bytes(); }
  void step(std::span<const StepItem> work, std::span<float> logits) override {
    {
      std::lock_guard lock(mutex);
      StepShape shape;
      for (const auto& w : work) {
        shape.sequences.insert(w.sequence);
        (w.tokens.size() == 1 && w.logits != LogitsMode::kNone ? shape.single_token_items : shape.chunk_items)++;
        shape.tokens += static_cast<int64_t>(w.tokens.size());
      }
      steps.push_back(shape);
    }
    inner_.step(work, logits);
  }
  struct StepShape {
    std::set<SequenceId> sequences;
    int single_token_items = 0;
    int chunk_items = 0;
    int64_t tokens = 0;
  };
  std::mutex mutex;
  std::vector<StepShape> steps;

 private:
  StepModel& inner_;
};

TEST(Scheduler, ConcurrentOutputsEqualSerialReference) {
  for (bool sampled : {false, true}) {
    FakeModelOptions options = small_model();
    FakeStepModel model(options);
    SchedulerMetrics metrics;
    // A small token budget forces chunked prefill mixed with decodes.
    Scheduler scheduler(model, {.max_num_seqs = 8, .max_waiting = 100, .max_batched_tokens = 13}, metrics);
    std::mt19937 rng(sampled ? 99 : 98);
    std::vector<GenerationRequest> requests;
    for (int i = 0; i < 48; ++i) requests.push_back(random_request(rng, options.vocab_size, sampled));
    std::vector<std::shared_ptr<GenerationStream>> streams;
    for (const auto& r : requests) streams.push_back(scheduler.submit({r})[0]);
    for (size_t i = 0; i < requests.size(); ++i) {
      Collected c = collect(*streams[i]);
      EXPECT_EQ(c.tokens, reference_generation(options, requests[i])) << "request " << i << " sampled " << sampled;
      EXPECT_TRUE(c.finish.reason == FinishReason::kLength || c.finish.reason == FinishReason::kStopToken);
    }
    EXPECT_TRUE(scheduler.wait_until_idle(5s));
    EXPECT_EQ(model.live_sequences(), 0u);
  }
}

// A large vocabulary makes the scheduler sample in parallel threads.
TEST(Scheduler, ParallelSamplingEqualsSerialReference) {
  FakeModelOptions options = small_model();
  options.vocab_size = 40000;
  options.state_bytes_per_token = 16;
  FakeStepModel model(options);
  SchedulerMetrics metrics;
  Scheduler scheduler(model, {.max_num_seqs = 32, .max_waiting = 100, .max_batched_tokens = 256}, metrics);
  std::mt19937 rng(7);
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 32; ++i) {
    GenerationRequest r = random_request(rng, options.vocab_size, i % 2 == 0);
    r.max_new_tokens = 8;
    requests.push_back(r);
  }
  auto streams = scheduler.submit(requests);
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(collect(*streams[i]).tokens, reference_generation(options, requests[i])) << "request " << i;
  }
}

TEST(Scheduler, BatchesRespectLimitsAndMixPrefillWithDecode) {
  FakeModelOptions options = small_model();
  FakeStepModel fake(options);
  RecordingModel model(fake);
  SchedulerMetrics metrics;
  Scheduler scheduler(model, {.max_num_seqs = 4, .max_waiting = 100, .max_batched_tokens = 10}, metrics);
  std::mt19937 rng(3);
  // Queued in one submit, so that the scheduler sees all twelve at once: submitted one by one, a
  // step-free fake model can finish each before the next arrives, and no step would mix.
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 12; ++i) {
    GenerationRequest r = random_request(rng, options.vocab_size, false);
    r.prompt.resize(25, 5);
    r.max_new_tokens = 20;
    r.stop_token_ids.clear();
    requests.push_back(r);
  }
  const std::vector<std::shared_ptr<GenerationStream>> streams = scheduler.submit(requests);
  for (auto& s : streams) EXPECT_EQ(collect(*s).tokens.size(), 20u);
  std::lock_guard lock(model.mutex);
  bool mixed = false;
  for (const auto& step : model.steps) {
    EXPECT_LE(step.sequences.size(), 4u);
    EXPECT_LE(step.tokens, 10);
    mixed |= step.single_token_items > 0 && step.chunk_items > 0;
  }
  EXPECT_TRUE(mixed) << "no step mixed a prompt chunk with decodes";
}

TEST(Scheduler, LateRequestJoinsTheRunningBatch) {
  FakeStepModel model(small_model(1ms));
  SchedulerMetrics metrics;
  Scheduler scheduler(model, {.max_num_seqs = 4, .max_waiting = 10, .max_batched_tokens = 64}, metrics);
  GenerationRequest long_request = request({5, 6, 7}, 200);
  long_request.sampling.temperature = 0;
  auto long_stream = scheduler.submit({long_request})[0];
  wait_for_first_token(*long_stream);
  GenerationRequest short_request = long_request;
  short_request.max_new_tokens = 3;
  auto short_stream = scheduler.submit({short_request})[0];
  Collected c = collect(*short_stream);
  EXPECT_EQ(c.tokens.size(), 3u);
  // The short request finished while the long one is still generating.
  auto update = long_stream->wait(0ms);
  EXPECT_FALSE(update.finish.has_value());
  long_stream->cancel();
  EXPECT_TRUE(scheduler.wait_until_idle(5s));
}

TEST(Scheduler, CancelFreesStateAtOnce) {
  FakeStepModel model(small_model(1ms));
  SchedulerMetrics metrics;
  Scheduler scheduler(model, {.max_num_seqs = 4, .max_waiting = 10, .max_batched_tokens = 64}, metrics);
  GenerationRequest r = request({4, 4, 4}, 10000);
  auto streams = scheduler.submit({r, r, r});
  for (auto& s : streams) wait_for_first_token(*s);
  EXPECT_EQ(model.live_sequences(), 3u);
  EXPECT_GT(model.sequence_state_bytes(), 0u);
  for (auto& s : streams) s->cancel();
  for (auto& s : streams) EXPECT_EQ(collect(*s).finish.reason, FinishReason::kCancelled);
  EXPECT_EQ(model.live_sequences(), 0u);
  EXPECT_EQ(model.sequence_state_bytes(), 0u);
  EXPECT_TRUE(scheduler.wait_until_idle(1s));
  EXPECT_EQ(scheduler.load().running, 0);
}

TEST(Scheduler, QueueBoundRejectsWithQueueFull) {
  FakeStepModel model(small_model(2ms));
  SchedulerMetrics metrics;
  Scheduler scheduler(model, {.max_num_seqs = 2, .max_waiting = 3, .max_batched_tokens = 64}, metrics);
  GenerationRequest r = request({4, 5}, 10000);
  std::vector<std::shared_ptr<GenerationStream>> accepted;
  for (int i = 0; i < 5; ++i) accepted.push_back(scheduler.submit({r})[0]);  // 2 running + 3 waiting
  EXPECT_THROW(scheduler.submit({r}), QueueFullError);
  EXPECT_EQ(metrics.counters().rejected_requests, 1u);
  for (auto& s : accepted) s->cancel();
  EXPECT_TRUE(scheduler.wait_until_idle(5s));
  EXPECT_NO_THROW(scheduler.submit({r})[0]->cancel());
}

TEST(Scheduler, MoreSequencesThanCapacityNeverFit) {
  FakeStepModel model(small_model());
  SchedulerMetrics metrics;
  Scheduler scheduler(model, {.max_num_seqs = 2, .max_waiting = 3, .max_batched_tokens = 64}, metrics);
  EXPECT_EQ(scheduler.capacity(), 5u);
  const GenerationRequest r = request({4, 5}, 1);
  // Six choices cannot be held even by an idle scheduler: not "queue full", which means retry.
  try {
    scheduler.submit(std::vector<GenerationRequest>(6, r));
    ADD_FAILURE() << "accepted 6 sequences with capacity 5";
  } catch (const TooLargeError& e) {
    EXPECT_NE(std::string(e.what()).find("needs 6 sequences at once, but the server holds at most 5"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(metrics.counters().rejected_requests, 1u);
  auto streams = scheduler.submit(std::vector<GenerationRequest>(5, r));  // exactly the capacity fits
  EXPECT_EQ(streams.size(), 5u);
  for (auto& s : streams) collect(*s);
}

TEST(Scheduler, DeadlineEndsWithTimeout) {
  // Steps of at least 5 ms: at most 40 tokens before the deadline, far from the
  // context (256), and 200 ms is long enough to start generating on a busy machine.
  FakeStepModel model(small_model(5ms));
  SchedulerMetrics metrics;
  Scheduler scheduler(model, {}, metrics);
  GenerationRequest r = request({9}, 1000000);
  r.deadline = Clock::now() + 200ms;
  Collected c = collect(*scheduler.submit({r})[0]);
  EXPECT_EQ(c.finish.reason, FinishReason::kTimeout);
  EXPECT_GT(c.tokens.size(), 0u);
  EXPECT_EQ(model.live_sequences(), 0u);
}

TEST(Scheduler, StopTokenAndContextLimit) {
  FakeModelOptions options = small_model();
  options.max_context = 20;
  FakeStepModel model(options);
  SchedulerMetrics metrics;
  Scheduler scheduler(model, {}, metrics);
  GenerationRequest r;
  r.prompt = {3, 4, 5, 6, 7};
  r.sampling.temperature = 0;
  r.max_new_tokens = 100;
  std::vector<int32_t> free_run = collect(*scheduler.submit({r})[0]).tokens;
  // Context 20 with a 5-token prompt leaves room for 15 generated tokens.
  ASSERT_EQ(free_run.size(), 15u);
  // Stopping at the 4th token's id ends right there, the stop token included.
  r.stop_token_ids = {free_run[3]};
  size_t first = std::find(free_run.begin(), free_run.end(), free_run[3]) - free_run.begin();
  Collected c = collect(*scheduler.submit({r})[0]);
  EXPECT_EQ(c.finish.reason, FinishReason::kStopToken);
  EXPECT_EQ(c.finish.stop_token, free_run[3]);
  EXPECT_EQ(c.tokens, std::vector<int32_t>(free_run.begin(), free_run.begin() + first + 1));
}

TEST(Scheduler, DrainRefusesNewWorkAndFinishesOld) {
  FakeStepModel model(small_model());
  SchedulerMetrics metrics;
  Scheduler scheduler(model, {}, metrics);
  GenerationRequest r = request({3}, 50);
  auto s = scheduler.submit({r})[0];
  scheduler.begin_drain();
  EXPECT_THROW(scheduler.submit({r}), DrainingError);
  EXPECT_TRUE(scheduler.wait_until_idle(5s));
  EXPECT_EQ(collect(*s).tokens.size(), 50u);
}

class FailingModel : public FakeStepModel {
 public:
  using FakeStepModel::FakeStepModel;
  void step(std::span<const StepItem> work, std::span<float> logits) override {
    if (++steps == 3) fail("simulated step failure");
    FakeStepModel::step(work, logits);
  }
  int steps = 0;
};

TEST(Scheduler, StepFailureEndsTheBatchWithAnError) {
  FailingModel model(small_model());
  SchedulerMetrics metrics;
  Scheduler scheduler(model, {}, metrics);
  GenerationRequest r = request({3}, 50);
  Collected c = collect(*scheduler.submit({r})[0]);
  EXPECT_EQ(c.finish.reason, FinishReason::kError);
  EXPECT_NE(c.finish.error.find("simulated step failure"), std::string::npos);
  EXPECT_EQ(model.live_sequences(), 0u);
}

// Writes NaN logits for one chosen sequence: only that one may fail.
class PoisonedModel : public FakeStepModel {
 public:
  using FakeStepModel::FakeStepModel;
  void step(std::span<const StepItem> work, std::span<float> logits) override {
    FakeStepModel::step(work, logits);
    for (size_t i = 0; i < work.size(); ++i) {
      if (work[i].sequence == poisoned && work[i].logits != LogitsMode::kNone) {
        std::fill_n(logits.begin() + i * vocab_size(), vocab_size(), std::numeric_limits<float>::quiet_NaN());
      }
    }
  }
  SequenceId poisoned = 1;  // the first submitted request
};

TEST(Scheduler, BadLogitsFailOnlyTheirSequence) {
  PoisonedModel model(small_model());
  SchedulerMetrics metrics;
  Scheduler scheduler(model, {}, metrics);
  GenerationRequest r = request({3, 4}, 5);
  auto streams = scheduler.submit({r, r});
  Collected bad = collect(*streams[0]);
  Collected good = collect(*streams[1]);
  EXPECT_EQ(bad.finish.reason, FinishReason::kError);
  EXPECT_NE(bad.finish.error.find("finite"), std::string::npos) << bad.finish.error;
  EXPECT_EQ(good.finish.reason, FinishReason::kLength);
  EXPECT_EQ(good.tokens.size(), 5u);
  EXPECT_TRUE(scheduler.wait_until_idle(1s));
  EXPECT_EQ(model.live_sequences(), 0u);
}

TEST(Scheduler, MetricsCountTokens) {
  FakeStepModel model(small_model());
  SchedulerMetrics metrics;
  Scheduler scheduler(model, {}, metrics);
  GenerationRequest r = request({3, 4, 5}, 7);
  collect(*scheduler.submit({r})[0]);
  EXPECT_EQ(metrics.counters().prompt_tokens, 3u);
  EXPECT_EQ(metrics.counters().generation_tokens, 7u);
  EXPECT_EQ(metrics.time_to_first_token.snapshot().count, 1u);
  EXPECT_EQ(metrics.inter_token_latency.snapshot().count, 6u);
}

TEST(FakeModel, RejectsBrokenContracts) {
  FakeStepModel model(small_model());
  std::vector<float> logits(97);
  int32_t t = 5;
  StepItem w{42, 0, std::span<const int32_t>(&t, 1), LogitsMode::kLast};
  EXPECT_THROW(model.step(std::span<const StepItem>(&w, 1), logits), Error);  // unknown sequence
  model.create_sequence(42);
  w.position = 3;
  EXPECT_THROW(model.step(std::span<const StepItem>(&w, 1), logits), Error);  // wrong position
  w.position = 0;
  t = 97;
  EXPECT_THROW(model.step(std::span<const StepItem>(&w, 1), logits), Error);  // token out of range
  EXPECT_THROW(model.free_sequence(43), Error);
}

TEST(FakeModel, GreedyNextTokenDependsOnTheWholeHistory) {
  // Same last token, different first token: the logits must differ.
  FakeStepModel model(small_model());
  std::vector<float> a(97), b(97);
  int32_t pa[] = {10, 20, 30}, pb[] = {11, 20, 30};
  model.create_sequence(1);
  model.create_sequence(2);
  StepItem wa{1, 0, pa, LogitsMode::kLast}, wb{2, 0, pb, LogitsMode::kLast};
  model.step(std::span<const StepItem>(&wa, 1), a);
  model.step(std::span<const StepItem>(&wb, 1), b);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace fp4serve::runtime
