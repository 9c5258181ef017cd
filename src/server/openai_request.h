// Parsing and validation of the OpenAI request bodies (/v1/chat/completions,
// /v1/completions) into plain structs. Every violation is an ApiError naming
// the field (HTTP 400), so no malformed request reaches the scheduler. Unknown
// fields are ignored, as vLLM does: clients send vendor extras.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "runtime/sampler.h"
#include "server/generation_defaults.h"

namespace fp4serve::server {

// Limits the validator enforces (OpenAI's where it has one).
inline constexpr int kMaxTopLogprobs = 20;
inline constexpr int kMaxChoices = 128;

struct GenerationOptions {
  runtime::SamplingParams sampling;  // seed is random unless the request gave one
  std::optional<int64_t> max_tokens;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  bool include_stop_str_in_output = false;
  bool ignore_eos = false;
  bool skip_special_tokens = true;
  int n = 1;
  bool logprobs = false;  // chat: logprobs=true; completions: logprobs=N given
  int top_logprobs = 0;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

enum class ThinkingMode { kChat, kThinking };

struct ChatRequest {
  std::optional<std::string> model;
  // Validated, as sent, in their key order: prompts render tool schemas as
  // Python's json.dumps does, which keeps the client's order.
  nlohmann::ordered_json messages;
  nlohmann::ordered_json tools;          // or null
  bool render_tools = false;             // tools given and tool_choice is not "none"
  ThinkingMode thinking = ThinkingMode::kThinking;
  std::string reasoning_effort = "low";  // "low" (the 0731 encoding's default), "high" or "max" (thinking mode only)
  std::string response_format = "text";   // "text" or "json_object"
  bool add_generation_prompt = true;
  GenerationOptions options;
};

using CompletionPrompt = std::variant<std::string, std::vector<int32_t>>;

struct CompletionRequest {
  std::optional<std::string> model;
  std::vector<CompletionPrompt> prompts;  // one choice group per prompt
  bool echo = false;
  GenerationOptions options;
};

struct TokenizeRequest {
  std::optional<std::string> model;
  std::optional<std::string> prompt;     // the completion form
  std::optional<ChatRequest> chat;       // the chat form (messages given)
  bool add_special_tokens = true;
  bool return_token_strs = false;
};

struct DetokenizeRequest {
  std::optional<std::string> model;
  std::vector<int32_t> tokens;
};

// Each body is parsed by parse_request_object (server/request_json.h): 400 for
// bytes that are not UTF-8, malformed JSON, trailing bytes, nesting beyond
// kMaxJsonDepth or a non-object, each with its byte offset; fields the
// endpoint does not read are dropped unbuilt. Fields the request leaves out
// take `defaults` (the model's generation_config.json, else OpenAI's).
ChatRequest parse_chat_request(std::string_view body, const SamplingDefaults& defaults = {});
CompletionRequest parse_completion_request(std::string_view body, const SamplingDefaults& defaults = {});
TokenizeRequest parse_tokenize_request(std::string_view body, const SamplingDefaults& defaults = {});
DetokenizeRequest parse_detokenize_request(std::string_view body);

}  // namespace fp4serve::server
