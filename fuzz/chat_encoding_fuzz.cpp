// Fuzzes prompt rendering with arbitrary JSON: it either renders or throws
// fp4serve::Error naming the bad field; any other exception is a missing check.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "base/error.h"
#include "text/chat_encoding.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto input = nlohmann::ordered_json::parse(data + 1, data + size, nullptr, false);
  if (input.is_discarded()) return 0;
  fp4serve::text::ChatEncodingOptions options;
  options.thinking_mode = data[0] & 1 ? fp4serve::text::ThinkingMode::kThinking : fp4serve::text::ThinkingMode::kChat;
  options.drop_thinking = data[0] & 2;
  options.reasoning_effort = static_cast<fp4serve::text::ReasoningEffort>((data[0] >> 2) % 3);
  try {
    nlohmann::ordered_json messages = input.is_object() && input.contains("messages") ? input["messages"] : input;
    if (input.is_object() && input.contains("tools")) fp4serve::text::attach_request_tools(messages, input["tools"]);
    fp4serve::text::encode_chat(messages, options);
  } catch (const fp4serve::Error&) {
  }
  return 0;
}
