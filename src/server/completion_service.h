// The OpenAI endpoints above HTTP: validated requests in, response JSON or SSE
// events out. Checks what needs the model (served name, context length, token
// ids), renders and tokenizes prompts, runs them through the scheduler and
// shapes the results as OpenAI (and vLLM / DeepSeek extensions) do.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "runtime/scheduler.h"
#include "server/openai_request.h"
#include "server/serving_text.h"

namespace fp4serve::server {

struct ServiceConfig {
  std::string served_model_name = "default";
  int64_t max_model_len = 4096;
  std::chrono::milliseconds request_timeout{std::chrono::minutes(10)};
  SamplingDefaults sampling_defaults;  // for fields a request leaves out
};

// Polled while a plain (non-streaming) response is being generated.
using ClientGone = std::function<bool()>;

// Produces the SSE body of a streaming response, a few events at a time.
class EventSource {
 public:
  virtual ~EventSource() = default;
  // Appends the next events to `out` (possibly none after `wait`); returns
  // false when the stream is complete (`data: [DONE]` has been appended).
  virtual bool next(std::string& out, std::chrono::milliseconds wait) = 0;
  // The client went away: stop generating now.
  virtual void cancel() = 0;
};

class CompletionService {
 public:
  CompletionService(const ServingText& text, runtime::Scheduler& scheduler, runtime::SchedulerMetrics& metrics,
                    ServiceConfig config);

  // All of these throw ApiError (404 unknown model; 400 for what can never
  // run: context overflow, bad token ids, more choices than the scheduler
  // holds; 429 queue full, a momentary state; 408 timeout, 500 model failure)
  // before any byte is sent; streams report later failures as an error event.
  nlohmann::json chat(const ChatRequest& request, const ClientGone& client_gone);
  std::unique_ptr<EventSource> chat_stream(const ChatRequest& request);
  nlohmann::json completion(const CompletionRequest& request, const ClientGone& client_gone);
  std::unique_ptr<EventSource> completion_stream(const CompletionRequest& request);

  nlohmann::json tokenize(const TokenizeRequest& request) const;
  nlohmann::json detokenize(const DetokenizeRequest& request) const;
  nlohmann::json models() const;

  const ServiceConfig& config() const { return config_; }

 private:
  struct Prepared;
  Prepared prepare_chat(const ChatRequest& request) const;
  Prepared prepare_completion(const CompletionRequest& request) const;
  void check_model(const std::optional<std::string>& model) const;
  void check_capacity(size_t sequences, const GenerationOptions& options) const;
  int64_t resolve_max_tokens(int64_t prompt_tokens, std::optional<int64_t> requested, const char* param) const;
  std::vector<int32_t> stop_token_ids(const GenerationOptions& options) const;
  void check_token_ids(const std::vector<int32_t>& ids, const char* param) const;

  const ServingText& text_;
  runtime::Scheduler& scheduler_;
  runtime::SchedulerMetrics& metrics_;
  ServiceConfig config_;
};

// "data: {json}\n\n", with invalid UTF-8 (never expected) replaced rather than thrown.
std::string sse_event(const nlohmann::json& payload);

}  // namespace fp4serve::server
