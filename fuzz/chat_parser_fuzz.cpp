// Fuzzes the streaming output parser: for any text and any split of it, the
// streamed result must equal the whole parse. The first input byte picks the
// mode and the split points; the rest is the generated text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "text/output_parser.h"

using fp4serve::text::OutputParser;
using fp4serve::text::ParsedCompletion;
using fp4serve::text::ThinkingMode;

namespace {

bool same(const ParsedCompletion& a, const ParsedCompletion& b) {
  if (a.reasoning_content != b.reasoning_content || a.content != b.content || a.ended != b.ended ||
      a.malformed != b.malformed || a.tool_calls.size() != b.tool_calls.size())
    return false;
  for (size_t i = 0; i < a.tool_calls.size(); ++i) {
    if (a.tool_calls[i].id != b.tool_calls[i].id || a.tool_calls[i].name != b.tool_calls[i].name ||
        a.tool_calls[i].arguments != b.tool_calls[i].arguments)
      return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const ThinkingMode mode = data[0] & 1 ? ThinkingMode::kThinking : ThinkingMode::kChat;
  const unsigned stride = 1 + (data[0] >> 1);  // chunk length pattern
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  const ParsedCompletion whole = fp4serve::text::parse_completion(text, mode);

  OutputParser parser(mode);
  std::string content, reasoning;
  std::vector<std::string> arguments;
  size_t at = 0, chunk = 0;
  while (at < text.size()) {
    const size_t length = 1 + (stride * ++chunk) % 23;
    const auto delta = parser.push(std::string_view(text).substr(at, length));
    content += delta.content;
    reasoning += delta.reasoning_content;
    for (const auto& call : delta.tool_calls) {
      if (call.index >= arguments.size()) arguments.resize(call.index + 1);
      arguments[call.index] += call.arguments;
    }
    at += length;
  }
  const auto last = parser.finish();
  content += last.content;
  reasoning += last.reasoning_content;
  for (const auto& call : last.tool_calls) {
    if (call.index >= arguments.size()) arguments.resize(call.index + 1);
    arguments[call.index] += call.arguments;
  }
  if (!same(parser.result(), whole)) __builtin_trap();
  if (content != whole.content || reasoning != whole.reasoning_content) __builtin_trap();
  if (arguments.size() != whole.tool_calls.size()) __builtin_trap();
  for (size_t i = 0; i < arguments.size(); ++i)
    if (arguments[i] != whole.tool_calls[i].arguments) __builtin_trap();
  return 0;
}
