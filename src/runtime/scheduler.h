// Continuous batching over a StepModel. One scheduler thread owns the model:
// each iteration it admits waiting requests (up to max_num_seqs running), gives
// every decoding sequence one token and fills the rest of the step's token
// budget with prompt chunks (chunked prefill mixed with decodes), runs one
// batched step, samples, and hands the tokens to each request's stream.
//
// Requests join and leave between steps; a cancelled or timed-out sequence's
// model state is freed at the start of the next iteration (at most one step
// later). Text-level concerns (detokenizing, stop strings) stay with the
// consumer of the stream, which cancels the stream when it has seen enough.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "runtime/step_model.h"
#include "runtime/sampler.h"
#include "runtime/scheduler_metrics.h"

namespace fp4serve::runtime {

using Clock = std::chrono::steady_clock;

struct GenerationRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int64_t max_new_tokens = 16;
  std::vector<int32_t> stop_token_ids;  // EOS belongs here unless the caller ignores it
  Clock::time_point deadline = Clock::time_point::max();
};

enum class FinishReason {
  kStopToken,  // a stop token id was sampled (it is delivered, the consumer hides it)
  kLength,     // max_new_tokens reached, or the model's context is full
  kCancelled,  // the consumer cancelled (client gone, stop string seen)
  kTimeout,    // the deadline passed
  kError,      // the model step failed; `error` says why
};

struct Finish {
  FinishReason reason = FinishReason::kLength;
  int32_t stop_token = -1;
  std::string error;
};

// The channel between the scheduler (producer) and one request's consumer.
class GenerationStream {
 public:
  struct Update {
    std::vector<SampledToken> tokens;  // tokens since the previous update, in order
    std::optional<Finish> finish;      // set once, after the last token
  };
  // Waits up to `timeout` for tokens or the end; an empty update means neither came.
  Update wait(std::chrono::milliseconds timeout);
  // Stops generation; the scheduler frees the sequence's state at its next iteration.
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

  // Producer side (the scheduler thread).
  void push(SampledToken token);
  void finish(Finish finish);

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<SampledToken> pending_;
  std::optional<Finish> finish_;
  bool finish_delivered_ = false;
  std::atomic<bool> cancelled_{false};
};

struct SchedulerConfig {
  int max_num_seqs = 64;             // sequences in the running batch
  int max_waiting = 256;             // bound of the queue in front of it
  int64_t max_batched_tokens = 512;  // tokens per step: decodes plus prompt chunks
};

// submit() refusals, so the server can answer 429, 400 or 503. Queue full is
// momentary (retry later); too large never fits, however long one waits.
class QueueFullError : public Error {
 public:
  using Error::Error;
};
class TooLargeError : public Error {
 public:
  using Error::Error;
};
class DrainingError : public Error {
 public:
  using Error::Error;
};

class Scheduler {
 public:
  Scheduler(StepModel& model, SchedulerConfig config, SchedulerMetrics& metrics);
  ~Scheduler();  // cancels everything and joins the thread
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues the requests (the n choices of one API request) all or none.
  // Throws TooLargeError when there are more than capacity(), QueueFullError
  // when they do not fit now, DrainingError after begin_drain().
  std::vector<std::shared_ptr<GenerationStream>> submit(std::vector<GenerationRequest> requests);

  // Refuses new requests from now on; those already queued or running finish.
  void begin_drain();
  // Waits until nothing is queued or running; false on timeout.
  bool wait_until_idle(std::chrono::milliseconds timeout);

  struct Load {
    int running = 0;
    int waiting = 0;
    size_t state_bytes = 0;
  };
  Load load() const;
  // StepModel::unusable of the model it drives.
  std::string model_unusable() const { return model_.unusable(); }
  const SchedulerConfig& config() const { return config_; }
  // The most sequences held at once, running and queued.
  size_t capacity() const { return static_cast<size_t>(config_.max_num_seqs) + static_cast<size_t>(config_.max_waiting); }

 private:
  struct Sequence;
  void run();
  void admit_waiting();
  void retire_finished();
  void run_one_step();
  void propose_drafts(int64_t budget);
  void emit(Sequence& sequence, SampledToken token, Clock::time_point now);
  void finish_sequence(Sequence& sequence, Finish finish);

  StepModel& model_;
  SchedulerConfig config_;
  SchedulerMetrics& metrics_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::deque<std::unique_ptr<Sequence>> waiting_;  // guarded by mutex_
  int running_count_ = 0;                          // guarded by mutex_ (mirrors running_.size())
  bool draining_ = false;
  bool stopping_ = false;

  std::vector<std::unique_ptr<Sequence>> running_;  // scheduler thread only
  SequenceId next_id_ = 1;                          // guarded by mutex_
  std::vector<float> logits_;                       // scheduler thread only
  std::thread thread_;
};

}  // namespace fp4serve::runtime
