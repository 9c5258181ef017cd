// DeepSeek-V4 prompt rendering: OpenAI-style chat messages -> the prompt
// string, byte for byte as DeepSeek's reference encoder (encoding_dsv4.py)
// renders it. Tokenize the result with Tokenizer::encode: the special tokens
// it contains (<｜User｜>, <think>, ...) are matched as single ids.
//
//   nlohmann::ordered_json messages = ...;             // request.messages
//   attach_request_tools(messages, request["tools"]);  // if the request has tools
//   ChatEncodingOptions options;
//   options.thinking_mode = ThinkingMode::kThinking;
//   std::string prompt = encode_chat(messages, options);
//
// Messages: roles system, developer, user, assistant, tool, latest_reminder;
// fields content (string, null, or a list of {"type":"text"} parts),
// reasoning_content (or reasoning), tools, response_format, tool_calls
// (arguments as a JSON string or an object), tool_call_id, task, wo_eos.
// Malformed messages throw fp4serve::Error naming the field ("messages[2].tool_calls[0].function").
//
// The format, as the reference implements it:
//  - BOS, then the messages with no separators; <｜User｜>content for user and
//    developer turns, then <｜Assistant｜> and <think> (thinking mode, latest
//    turn) or </think> (chat mode, or an earlier turn).
//  - Assistant turns: [reasoning</think>]content[\n\n<｜DSML｜tool_calls>...]<｜end▁of▁sentence｜>.
//  - Tool results are merged into a user turn as <tool_result>...</tool_result>
//    blocks joined by \n\n, in the order of the preceding assistant's calls.
//  - In thinking mode the reasoning of assistant turns before the last user
//    message is dropped (and developer messages before it are removed), unless
//    any message carries tools.
//  - Reasoning effort text goes before everything else but BOS.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace fp4serve::text {

inline constexpr std::string_view kBosToken = "<｜begin▁of▁sentence｜>";
inline constexpr std::string_view kEosToken = "<｜end▁of▁sentence｜>";
inline constexpr std::string_view kUserToken = "<｜User｜>";
inline constexpr std::string_view kAssistantToken = "<｜Assistant｜>";
inline constexpr std::string_view kLatestReminderToken = "<｜latest_reminder｜>";
inline constexpr std::string_view kThinkStartToken = "<think>";
inline constexpr std::string_view kThinkEndToken = "</think>";
inline constexpr std::string_view kDsmlToken = "｜DSML｜";

enum class ThinkingMode { kChat, kThinking };

// The reasoning-effort prefix differs between checkpoint releases.
enum class EncodingRevision {
  kV4,      // April release (V4-Flash, V4-Pro): "high" adds nothing, "max" adds the maximum-effort text
  kV4_0731  // V4-Flash-0731 / V4-Pro-0813 (encoding/encoding_dsv4.py's REASONING_EFFORT_PROMPTS, default "low"):
            // "low" adds nothing, "high" the April "max" text, "max" a stronger text
};

// The 0731 encoder's three levels. The April encoder knows two, high (its default, no text)
// and max: low renders as its high there.
enum class ReasoningEffort { kLow, kHigh, kMax };

// "low", "high", "max" -> the level; false for anything else.
bool parse_reasoning_effort(std::string_view name, ReasoningEffort* out);

struct ChatEncodingOptions {
  ThinkingMode thinking_mode = ThinkingMode::kThinking;
  ReasoningEffort reasoning_effort = ReasoningEffort::kLow;  // used in thinking mode only; low = the 0731 default
  EncodingRevision revision = EncodingRevision::kV4;
  bool drop_thinking = true;  // drop earlier turns' reasoning (off whenever tools are present)
  bool add_bos = true;        // ignored when there is a context: the context already began the prompt
};

// The prompt for `messages` (a JSON array). `context`, if given, are the
// messages already rendered before them (as for incremental prompts): they
// shape the transitions but are not rendered again.
std::string encode_chat(const nlohmann::ordered_json& messages, const ChatEncodingOptions& options,
                        const nlohmann::ordered_json& context = nlohmann::ordered_json::array());

// Attaches request-level tools the way DeepSeek's goldens and vLLM do: to the
// first message if it is a system or developer message, else to a new empty
// system message inserted first. Does nothing for null or an empty list.
void attach_request_tools(nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools);

std::string_view reasoning_effort_prompt(EncodingRevision revision, ReasoningEffort effort);

// The encoding a model directory ships, as SGLang decides it (sgl-project/sglang#33140): the
// 0731 revision when its encoding/encoding_dsv4.py defines REASONING_EFFORT_PROMPTS (the
// official three-level table), else the April one (also when the file is absent).
EncodingRevision detect_encoding_revision(const std::string& model_dir);

}  // namespace fp4serve::text
