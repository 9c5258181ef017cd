// Chat messages as the DeepSeek-V4 renderer sees them, and the reference's
// preprocessing passes (merge tool results into user turns, order them by
// call, drop earlier reasoning). Internal to chat_encoding.cpp.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace fp4serve::text {

struct ChatToolCall {
  std::string id;
  std::string name;
  nlohmann::ordered_json arguments;  // an object; raw text that is not one becomes {"arguments": text}
};

struct ChatBlock {
  bool is_tool_result = false;
  std::string text;         // the text, or the tool result's content
  std::string tool_use_id;  // for tool results
};

struct ChatMessage {
  std::string role;
  std::string content;
  std::vector<ChatBlock> blocks;  // user turns after merging
  bool has_blocks = false;
  std::string reasoning;
  nlohmann::ordered_json tools;            // array or null
  nlohmann::ordered_json response_format;  // null when absent
  bool has_response_format = false;
  std::vector<ChatToolCall> tool_calls;
  std::string tool_call_id;
  std::optional<std::string> task;
  bool wo_eos = false;
};

// Validates and reads a JSON array of OpenAI-style messages; `where` names it in errors.
std::vector<ChatMessage> parse_chat_messages(const nlohmann::ordered_json& messages, const std::string& where);

// Tool messages become tool-result blocks of a user turn; consecutive user turns merge.
std::vector<ChatMessage> merge_tool_messages(std::vector<ChatMessage> messages);

// Orders each user turn's tool results as the preceding assistant ordered its calls.
void sort_tool_results(std::vector<ChatMessage>& messages);

// Index of the last user or developer message, or -1.
int last_user_index(const std::vector<ChatMessage>& messages);

// Removes the reasoning of assistant turns before the last user message, and
// developer messages before it.
std::vector<ChatMessage> drop_earlier_thinking(const std::vector<ChatMessage>& messages);

}  // namespace fp4serve::text
