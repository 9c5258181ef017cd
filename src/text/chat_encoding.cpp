#include "text/chat_encoding.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "text/chat_messages.h"
#include "text/python_json.h"

namespace fp4serve::text {

namespace {

// Effort texts of DeepSeek's encoders (April "max" = 0731 "high").
constexpr std::string_view kEffortAbsoluteMaximum =
    "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
    "You MUST be very thorough in your thinking and comprehensively decompose the problem to resolve the root cause, "
    "rigorously stress-testing your logic against all potential paths, edge cases, and adversarial scenarios.\n"
    "Explicitly write out your entire deliberation process, documenting every intermediate step, considered "
    "alternative, and rejected hypothesis to ensure absolutely no assumption is left unchecked.\n\n";
constexpr std::string_view kEffortBeyondMaximum =
    "Reasoning Effort: Beyond maximum \u2014 exhaustive, relentless, and uncompromising.\n"
    "You MUST reason with the utmost depth and rigor, leaving absolutely nothing to chance: exhaustively decompose "
    "the problem into its most fundamental components, trace every causal chain to its root, and resolve the "
    "underlying cause rather than any surface symptom.\n"
    "Do not stop reasoning until you have independently verified the solution from multiple angles and are certain "
    "that no assumption remains unchecked and no error remains undiscovered.\n\n";

std::string tools_section(const nlohmann::ordered_json& tools) {
  std::string schemas;
  for (size_t i = 0; i < tools.size(); ++i) {
    if (i) schemas += '\n';
    schemas += python_json_dumps(tools[i]["function"]);
  }
  const std::string dsml(kDsmlToken);
  return "## Tools\n\nYou have access to a set of tools to help answer the user's question. You can invoke tools by "
         "writing a \"<" + dsml + "tool_calls>\" block like the following:\n\n"
         "<" + dsml + "tool_calls>\n"
         "<" + dsml + "invoke name=\"$TOOL_NAME\">\n"
         "<" + dsml + "parameter name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE</" + dsml + "parameter>\n"
         "...\n"
         "</" + dsml + "invoke>\n"
         "<" + dsml + "invoke name=\"$TOOL_NAME2\">\n"
         "...\n"
         "</" + dsml + "invoke>\n"
         "</" + dsml + "tool_calls>\n\n"
         "String parameters should be specified as is and set `string=\"true\"`. For all other types (numbers, "
         "booleans, arrays, objects), pass the value in JSON format and set `string=\"false\"`.\n\n"
         "If thinking_mode is enabled (triggered by <think>), you MUST output your complete reasoning inside "
         "<think>...</think> BEFORE any tool calls or final response.\n\n"
         "Otherwise, output directly after </think> with tool calls or final response.\n\n"
         "### Available Tool Schemas\n\n" + schemas + "\n\n"
         "You MUST strictly follow the above defined tool name and parameter schemas to invoke tool calls.\n";
}

std::string response_format_section(const nlohmann::ordered_json& format) {
  return "## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n" + python_json_dumps(format);
}

// Tools and response format, appended to a system or developer message.
std::string instructions(const ChatMessage& m) {
  std::string out;
  if (m.tools.is_array() && !m.tools.empty()) out += "\n\n" + tools_section(m.tools);
  if (m.has_response_format) out += "\n\n" + response_format_section(m.response_format);
  return out;
}

std::string tool_calls_block(const std::vector<ChatToolCall>& calls) {
  const std::string dsml(kDsmlToken);
  std::string out = "\n\n<" + dsml + "tool_calls>\n";
  for (size_t c = 0; c < calls.size(); ++c) {
    if (c) out += '\n';
    out += "<" + dsml + "invoke name=\"" + calls[c].name + "\">\n";
    bool first = true;
    for (const auto& [key, value] : calls[c].arguments.items()) {
      if (!first) out += '\n';
      first = false;
      const bool is_string = value.is_string();
      out += "<" + dsml + "parameter name=\"" + key + "\" string=\"" + (is_string ? "true" : "false") + "\">";
      out += is_string ? value.get<std::string>() : python_json_dumps(value);
      out += "</" + dsml + "parameter>";
    }
    out += "\n</" + dsml + "invoke>";
  }
  out += "\n</" + dsml + "tool_calls>";
  return out;
}

std::string task_token(const std::string& task) { return "<｜" + task + "｜>"; }

struct RenderState {
  const std::vector<ChatMessage>& messages;
  bool thinking;
  bool drop_thinking;
  std::string_view effort_prompt;
};

std::string render_message(int index, const RenderState& s) {
  const ChatMessage& m = s.messages[index];
  const int last_user = last_user_index(s.messages);
  std::string prompt;
  if (index == 0 && s.thinking) prompt += s.effort_prompt;

  if (m.role == "system") {
    prompt += m.content + instructions(m);
  } else if (m.role == "developer") {
    prompt += std::string(kUserToken) + m.content + instructions(m);
  } else if (m.role == "user") {
    prompt += kUserToken;
    if (m.has_blocks) {
      for (size_t b = 0; b < m.blocks.size(); ++b) {
        if (b) prompt += "\n\n";
        const ChatBlock& block = m.blocks[b];
        prompt += block.is_tool_result ? "<tool_result>" + block.text + "</tool_result>" : block.text;
      }
    } else {
      prompt += m.content;
    }
  } else if (m.role == "latest_reminder") {
    prompt += std::string(kLatestReminderToken) + m.content;
  } else if (m.role == "assistant") {
    const bool after_task = index > 0 && s.messages[index - 1].task.has_value();
    if (s.thinking && !after_task && (!s.drop_thinking || index > last_user)) prompt += m.reasoning + std::string(kThinkEndToken);
    prompt += m.content;
    if (!m.tool_calls.empty()) prompt += tool_calls_block(m.tool_calls);
    if (!m.wo_eos) prompt += kEosToken;
  } else {
    fail("messages[{}]: a raw '{}' message cannot be rendered", index, m.role);
  }

  // What opens the next turn; only before an assistant or reminder turn, or at the end.
  const bool last = index + 1 == static_cast<int>(s.messages.size());
  if (!last && s.messages[index + 1].role != "assistant" && s.messages[index + 1].role != "latest_reminder") return prompt;
  if (m.task) {
    if (*m.task == "action") {
      prompt += std::string(kAssistantToken) + std::string(s.thinking ? kThinkStartToken : kThinkEndToken);
    }
    prompt += task_token(*m.task);
  } else if (m.role == "user" || m.role == "developer") {
    const bool open_thinking = s.thinking && (!s.drop_thinking || index >= last_user);
    prompt += std::string(kAssistantToken) + std::string(open_thinking ? kThinkStartToken : kThinkEndToken);
  }
  return prompt;
}

}  // namespace

EncodingRevision detect_encoding_revision(const std::string& model_dir) {
  std::ifstream in(std::filesystem::path(model_dir) / "encoding" / "encoding_dsv4.py", std::ios::binary);
  if (!in) return EncodingRevision::kV4;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str().find("REASONING_EFFORT_PROMPTS") != std::string::npos ? EncodingRevision::kV4_0731
                                                                          : EncodingRevision::kV4;
}

bool parse_reasoning_effort(std::string_view name, ReasoningEffort* out) {
  if (name == "low") *out = ReasoningEffort::kLow;
  else if (name == "high") *out = ReasoningEffort::kHigh;
  else if (name == "max") *out = ReasoningEffort::kMax;
  else return false;
  return true;
}

std::string_view reasoning_effort_prompt(EncodingRevision revision, ReasoningEffort effort) {
  if (revision == EncodingRevision::kV4) return effort == ReasoningEffort::kMax ? kEffortAbsoluteMaximum : "";
  switch (effort) {
    case ReasoningEffort::kLow: return "";
    case ReasoningEffort::kHigh: return kEffortAbsoluteMaximum;
    case ReasoningEffort::kMax: return kEffortBeyondMaximum;
  }
  return "";
}

std::string encode_chat(const nlohmann::ordered_json& messages, const ChatEncodingOptions& options,
                        const nlohmann::ordered_json& context) {
  std::vector<ChatMessage> earlier = merge_tool_messages(parse_chat_messages(context, "context"));
  std::vector<ChatMessage> current = merge_tool_messages(parse_chat_messages(messages, "messages"));
  const size_t current_count = current.size();
  std::vector<ChatMessage> full = earlier;
  full.insert(full.end(), std::make_move_iterator(current.begin()), std::make_move_iterator(current.end()));
  sort_tool_results(full);

  bool drop = options.drop_thinking;
  for (const ChatMessage& m : full)
    if (m.tools.is_array() && !m.tools.empty()) drop = false;
  const bool thinking = options.thinking_mode == ThinkingMode::kThinking;

  size_t first_rendered = earlier.size();
  size_t render_count = current_count;
  if (thinking && drop) {
    full = drop_earlier_thinking(full);
    const size_t kept_context = drop_earlier_thinking(earlier).size();
    render_count = full.size() - kept_context;
    first_rendered = kept_context;
  }

  std::string prompt = options.add_bos && earlier.empty() ? std::string(kBosToken) : "";
  const RenderState state{full, thinking, drop, reasoning_effort_prompt(options.revision, options.reasoning_effort)};
  for (size_t i = 0; i < render_count; ++i) prompt += render_message(static_cast<int>(first_rendered + i), state);
  return prompt;
}

void attach_request_tools(nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools) {
  if (tools.is_null() || (tools.is_array() && tools.empty())) return;
  if (!messages.is_array()) fail("messages: expected a list of messages");
  if (!messages.empty() && messages[0].is_object()) {
    const std::string role = messages[0].value("role", "");
    if (role == "system" || role == "developer") {
      messages[0]["tools"] = tools;
      return;
    }
  }
  messages.insert(messages.begin(), nlohmann::ordered_json{{"role", "system"}, {"content", ""}, {"tools", tools}});
}

}  // namespace fp4serve::text
