// What the server needs of the text layer, in one narrow interface: the
// tokenizer, a streaming detokenizer, prompt rendering for chat requests and
// an incremental parser that splits generated text into reasoning, content
// and tool calls. DeepSeekText (src/text: DeepSeek-V4 tokenizer, chat
// encoding, output parser) implements it for real models; ByteLevelText is a
// small stand-in for tests of the server itself.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "server/openai_request.h"

namespace fp4serve::server {

// Detokenizes generated tokens; never returns a partial UTF-8 character.
class StreamingDecoder {
 public:
  virtual ~StreamingDecoder() = default;
  virtual std::string push(int32_t token) = 0;
  virtual std::string finish() = 0;  // what was held back, incomplete characters as U+FFFD
};

struct ToolCallDelta {
  int index = 0;
  std::string id;    // set on a call's first fragment
  std::string name;  // set on a call's first fragment
  std::string arguments;  // a fragment of the JSON arguments string
};

struct OutputDelta {
  std::string reasoning_content;
  std::string content;
  std::vector<ToolCallDelta> tool_calls;
  bool empty() const { return reasoning_content.empty() && content.empty() && tool_calls.empty(); }
};

// Splits generated text as it streams in; never emits partial markup.
class OutputParser {
 public:
  virtual ~OutputParser() = default;
  virtual OutputDelta push(std::string_view text) = 0;
  virtual OutputDelta finish() = 0;  // the end of generation (complete or truncated)
  virtual bool saw_tool_calls() const = 0;
};

class ServingText {
 public:
  virtual ~ServingText() = default;

  virtual int vocab_size() const = 0;
  virtual int32_t eos_token() const = 0;
  // Throws fp4serve::Error for text that is not valid UTF-8. Special tokens
  // written in the text are matched as single tokens. `add_special_tokens`
  // prepends BOS where the tokenizer's configuration says so (completions
  // prompts; chat prompts carry their own).
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const = 0;
  // Throws fp4serve::Error for an id outside the vocabulary.
  virtual std::string decode(std::span<const int32_t> tokens, bool skip_special_tokens) const = 0;
  virtual std::string token_bytes(int32_t token) const = 0;
  virtual std::unique_ptr<StreamingDecoder> streaming_decoder(bool skip_special_tokens) const = 0;

  // The prompt for a chat request (messages, tools, thinking mode, response format).
  virtual std::string render_chat(const ChatRequest& request) const = 0;
  virtual std::unique_ptr<OutputParser> output_parser(ThinkingMode mode, bool tools) const = 0;
};

}  // namespace fp4serve::server
