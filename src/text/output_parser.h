// Generated text -> reasoning_content, content and tool_calls, incrementally,
// for streaming responses (DeepSeek-V4 format, DeepSeek's encoding/encoding_dsv4.py).
//
//   OutputParser parser(ThinkingMode::kThinking, "call_" + request_id + "_");
//   for (each decoded piece)  send(parser.push(piece));   // deltas: reasoning / content / tool calls
//   send(parser.finish());                                 // at EOS, stop or length
//   const ParsedCompletion& message = parser.result();     // the whole message
//
// The text is what the model generated after the prompt: in thinking mode
// "reasoning</think>content", in chat mode "content"; tool calls follow the
// content as "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=...>..." and the
// message ends with <｜end▁of▁sentence｜> (which may also be absent: stop or length).
// A tool-call block is recognized wherever it starts: after the blank line
// DeepSeek's encoder writes before it (which is then not content), right after
// </think>, mid-line, or inside reasoning that never closed.
//
// Guarantees, whatever the split of the text into pieces (tested on every
// split of short outputs and random splits of long ones):
//  - the deltas concatenate to result(), and result() equals parsing the text whole;
//  - markup is never emitted as content or reasoning, even partly: text that
//    might start a tag is held back until it is known not to;
//  - a tool-call block is all or nothing: its calls are emitted (each as one
//    delta with id, name and the complete arguments) only once
//    </｜DSML｜tool_calls> has closed it, so a client never sees a partial call;
//  - no text is lost: a block that breaks the DSML grammar or is cut short
//    becomes content, every byte of it from its first marker on (and `malformed`
//    says where it broke), as does text after the end of the message.
// Tool-call arguments are the JSON object DeepSeek's reference decoder builds:
// string="true" values as JSON strings, string="false" values verbatim. Push
// whole UTF-8 characters (as IncrementalDecoder produces them).
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "text/chat_encoding.h"

namespace fp4serve::text {

// One streamed piece of a tool call (OpenAI chunk shape): the first piece of a
// call carries its id and name, later ones only argument text.
struct ToolCallDelta {
  size_t index = 0;
  std::string id;    // first piece only
  std::string name;  // first piece only
  std::string arguments;
};

struct CompletionDelta {
  std::string reasoning_content;
  std::string content;
  std::vector<ToolCallDelta> tool_calls;
  bool empty() const { return reasoning_content.empty() && content.empty() && tool_calls.empty(); }
};

struct ParsedToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // JSON text
};

struct ParsedCompletion {
  std::string reasoning_content;
  std::string content;
  std::vector<ParsedToolCall> tool_calls;
  bool ended = false;     // <｜end▁of▁sentence｜> was seen
  std::string malformed;  // the first violation of the format, empty if none
};

class OutputParser {
 public:
  // Tool calls get ids tool_call_id_prefix + "0", "1", ...: pass a prefix unique to the request.
  explicit OutputParser(ThinkingMode mode, std::string tool_call_id_prefix = "call_");

  CompletionDelta push(std::string_view text);
  // The end of the stream: flushes whatever was held back.
  CompletionDelta finish();
  const ParsedCompletion& result() const { return result_; }

 private:
  enum class State {
    kReasoning, kContent, kBlockOpen, kBetweenInvokes, kInvokeName, kBetweenParameters, kParameterName,
    kParameterKind, kParameterValue, kAfterBlock, kTrailing
  };
  enum class Step { kProgress, kNeedMore };
  enum class Outcome { kMatched, kNeedMore, kMismatch, kTruncated };

  Step step(bool final, CompletionDelta& delta);
  Outcome scan_text(bool final, std::initializer_list<std::string_view> markers, int* found, std::string* text);
  void open_block(std::string_view marker);
  Outcome expect_one_of(bool final, std::initializer_list<std::string_view> options, int* chosen);
  Outcome read_until(bool final, std::string_view terminator, std::string* field);
  bool skip_space();  // false when nothing but spaces has arrived yet
  void consume(size_t n);
  void consume_text(size_t n, std::string* text);
  bool in_block() const;
  Step malformed(CompletionDelta& delta, const std::string& problem);
  void divert_to_content(CompletionDelta& delta);
  void emit_content(CompletionDelta& delta, std::string_view text);
  void emit_reasoning(CompletionDelta& delta, std::string_view text);
  void add_arguments(std::string_view text);
  void add_value(std::string_view raw);
  void commit_block(CompletionDelta& delta);

  std::string id_prefix_;
  State state_;
  std::string pending_;
  size_t consumed_ = 0;      // bytes of input consumed before pending_
  // The open tool-call block: its text as generated (content again if the
  // block breaks or is cut short) and the calls read from it so far.
  std::string block_text_;
  std::vector<ParsedToolCall> block_calls_;
  std::string field_;    // a name being read
  bool value_is_string_ = false;
  std::vector<std::string> parameter_names_;
  ParsedCompletion result_;
};

// Parses a whole completion (the same as one push and finish).
ParsedCompletion parse_completion(std::string_view text, ThinkingMode mode, std::string tool_call_id_prefix = "call_");

}  // namespace fp4serve::text
