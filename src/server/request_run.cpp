#include "server/request_run.h"

#include <algorithm>

#include "server/api_error.h"

namespace fp4serve::server {

RequestRun::RequestRun(runtime::Scheduler& scheduler, runtime::SchedulerMetrics& metrics, const ServingText& text,
                       const GenerationOptions& options, std::vector<ChoiceSpec> choices,
                       std::vector<int32_t> stop_token_ids, runtime::Clock::time_point deadline)
    : metrics_(metrics) {
  std::vector<runtime::GenerationRequest> requests;
  for (size_t i = 0; i < choices.size(); ++i) {
    runtime::GenerationRequest r;
    r.prompt = std::move(choices[i].prompt);
    r.sampling = options.sampling;
    // Each choice draws from its own stream, so choices differ and each one is
    // reproducible from (seed, index) alone.
    r.sampling.seed = options.sampling.seed + 0x9e3779b97f4a7c15ull * i;
    r.max_new_tokens = choices[i].max_new_tokens;
    r.stop_token_ids = stop_token_ids;
    r.deadline = deadline;
    requests.push_back(std::move(r));
    outputs_.push_back(std::make_unique<ChoiceOutput>(text, options, stop_token_ids, std::move(choices[i].parser)));
  }
  try {
    streams_ = scheduler.submit(std::move(requests));
  } catch (const runtime::QueueFullError& e) {
    throw ApiError(429, e.what(), {}, "queue_full");
  } catch (const runtime::TooLargeError& e) {
    throw ApiError(400, e.what(), "n", "request_too_large");
  } catch (const runtime::DrainingError& e) {
    throw ApiError(503, e.what(), {}, "shutting_down");
  }
  finished_.assign(streams_.size(), false);
}

RequestRun::~RequestRun() { cancel(); }

void RequestRun::cancel() {
  for (size_t i = 0; i < streams_.size(); ++i) {
    if (finished_[i]) continue;
    streams_[i]->cancel();
    finished_[i] = true;
    metrics_.count_finished("abort");
  }
}

bool RequestRun::done() const { return std::all_of(finished_.begin(), finished_.end(), [](bool f) { return f; }); }

std::vector<RequestRun::ChoiceEvent> RequestRun::poll(std::chrono::milliseconds wait) {
  std::vector<ChoiceEvent> events;
  const size_t n = streams_.size();
  // Wait on the first unfinished choice (round robin), then collect the others without waiting.
  bool waited = false;
  for (size_t k = 0; k < n; ++k) {
    size_t i = (next_poll_ + k) % n;
    if (finished_[i]) continue;
    runtime::GenerationStream::Update update = streams_[i]->wait(waited ? std::chrono::milliseconds(0) : wait);
    waited = true;
    ChoiceEvent event;
    event.index = i;
    event.delta = outputs_[i]->push(update.tokens);
    if (outputs_[i]->stop_string_matched() && !update.finish) {
      // Seen enough: stop the sequence now; the scheduler confirms with kCancelled.
      streams_[i]->cancel();
    }
    if (update.finish) {
      const runtime::Finish& f = *update.finish;
      if (f.reason == runtime::FinishReason::kTimeout) {
        finished_[i] = true;
        metrics_.count_finished("timeout");
        cancel();
        throw ApiError(408, "the request timed out (--request-timeout)", {}, "timeout");
      }
      if (f.reason == runtime::FinishReason::kError ||
          (f.reason == runtime::FinishReason::kCancelled && !f.error.empty())) {
        finished_[i] = true;
        metrics_.count_finished("error");
        cancel();
        throw ApiError(500, "generation failed: " + f.error, {}, "generation_failed");
      }
      ChoiceOutput::Delta last = outputs_[i]->finish(f);
      event.delta.text.reasoning_content += last.text.reasoning_content;
      event.delta.text.content += last.text.content;
      for (auto& call : last.text.tool_calls) event.delta.text.tool_calls.push_back(std::move(call));
      event.finished = true;
      finished_[i] = true;
      metrics_.count_finished(outputs_[i]->finish_reason() == "tool_calls" ? "stop" : outputs_[i]->finish_reason());
    }
    if (event.finished || !event.delta.empty()) events.push_back(std::move(event));
  }
  next_poll_ = (next_poll_ + 1) % std::max<size_t>(n, 1);
  return events;
}

int64_t RequestRun::completion_tokens() const {
  int64_t total = 0;
  for (const auto& o : outputs_) total += o->completion_tokens();
  return total;
}

int64_t RequestRun::reasoning_tokens() const {
  int64_t total = 0;
  for (const auto& o : outputs_) total += o->reasoning_tokens();
  return total;
}

}  // namespace fp4serve::server
