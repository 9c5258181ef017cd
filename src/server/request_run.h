// One API request in flight: its choices submitted to the scheduler (n per
// prompt), each with its ChoiceOutput, polled together. Both the plain and
// the streaming responses are built from the deltas it returns. Destroying a
// run cancels whatever is still generating, so the scheduler frees the
// sequences' state however the request ends (client gone, error, exception).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/scheduler.h"
#include "server/choice_output.h"

namespace fp4serve::server {

struct ChoiceSpec {
  std::vector<int32_t> prompt;
  int64_t max_new_tokens = 16;
  std::unique_ptr<OutputParser> parser;  // null for completions
};

class RequestRun {
 public:
  // Submits every choice at once (all or none): throws ApiError 429 when the
  // queue is full, 400 when the choices outnumber the scheduler's capacity
  // (they never fit), 503 while draining.
  RequestRun(runtime::Scheduler& scheduler, runtime::SchedulerMetrics& metrics, const ServingText& text,
             const GenerationOptions& options, std::vector<ChoiceSpec> choices, std::vector<int32_t> stop_token_ids, runtime::Clock::time_point deadline);
  ~RequestRun();
  RequestRun(const RequestRun&) = delete;
  RequestRun& operator=(const RequestRun&) = delete;

  struct ChoiceEvent {
    size_t index = 0;
    ChoiceOutput::Delta delta;
    bool finished = false;  // this event carries the choice's last text
  };
  // Waits up to `wait` for progress on any choice; returns the events (maybe none).
  // Throws ApiError for a timeout (408) or a failed model step (500).
  std::vector<ChoiceEvent> poll(std::chrono::milliseconds wait);
  bool done() const;
  void cancel();  // the client went away

  size_t choices() const { return outputs_.size(); }
  const ChoiceOutput& output(size_t index) const { return *outputs_[index]; }
  int64_t completion_tokens() const;
  int64_t reasoning_tokens() const;

 private:
  runtime::SchedulerMetrics& metrics_;
  std::vector<std::shared_ptr<runtime::GenerationStream>> streams_;
  std::vector<std::unique_ptr<ChoiceOutput>> outputs_;
  std::vector<bool> finished_;
  size_t next_poll_ = 0;  // round-robin start, so no choice starves the wait
};

}  // namespace fp4serve::server
