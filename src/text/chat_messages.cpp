#include "text/chat_messages.h"

#include <algorithm>
#include <map>

#include "base/error.h"
#include "text/utf8.h"

namespace fp4serve::text {

namespace {

const char* const kTasks[] = {"action", "query", "authority", "domain", "title", "read_url"};

// A string field: absent or null is "", a string is itself, a list of
// {"type": "text"} parts is their texts joined by `separator`.
std::string text_field(const nlohmann::ordered_json& message, const char* key, const std::string& where,
                       const char* separator) {
  const auto it = message.find(key);
  if (it == message.end() || it->is_null()) return "";
  const std::string path = where + "." + key;
  if (it->is_string()) {
    check_utf8(it->get_ref<const std::string&>(), path);
    return it->get<std::string>();
  }
  if (!it->is_array()) fail("{}: expected a string, null or a list of text parts", path);
  std::string joined;
  for (size_t i = 0; i < it->size(); ++i) {
    const auto& part = (*it)[i];
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
      fail("{}[{}]: only {{\"type\": \"text\", \"text\": ...}} parts are supported", path, i);
    if (i) joined += separator;
    joined += part["text"].get<std::string>();
  }
  check_utf8(joined, path);
  return joined;
}

nlohmann::ordered_json parse_arguments(const nlohmann::ordered_json& arguments) {
  if (arguments.is_object()) return arguments;
  const std::string raw = arguments.is_string() ? arguments.get<std::string>() : "";
  // The reference wraps arguments that are not a JSON object as one "arguments" parameter.
  nlohmann::ordered_json parsed = nlohmann::ordered_json::parse(raw, nullptr, false);
  if (parsed.is_object()) return parsed;
  return nlohmann::ordered_json{{"arguments", raw}};
}

ChatToolCall parse_tool_call(const nlohmann::ordered_json& call, const std::string& where) {
  if (!call.is_object()) fail("{}: expected an object", where);
  const auto function = call.find("function");
  if (function == call.end() || !function->is_object()) fail("{}.function: expected an object", where);
  if (!function->contains("name") || !(*function)["name"].is_string())
    fail("{}.function.name: expected a string", where);
  ChatToolCall result;
  result.name = (*function)["name"].get<std::string>();
  check_utf8(result.name, where + ".function.name");
  if (call.contains("id") && call["id"].is_string()) {
    result.id = call["id"].get<std::string>();
  } else if (function->contains("id") && (*function)["id"].is_string()) {
    result.id = (*function)["id"].get<std::string>();
  }
  const auto arguments = function->find("arguments");
  if (arguments != function->end() && !arguments->is_string() && !arguments->is_object() && !arguments->is_null())
    fail("{}.function.arguments: expected a JSON string or an object", where);
  result.arguments = parse_arguments(arguments == function->end() ? nlohmann::ordered_json() : *arguments);
  return result;
}

}  // namespace

std::vector<ChatMessage> parse_chat_messages(const nlohmann::ordered_json& messages, const std::string& where) {
  if (!messages.is_array()) fail("{}: expected a list of messages", where);
  std::vector<ChatMessage> result;
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    const std::string path = fmt::format("{}[{}]", where, i);
    if (!m.is_object()) fail("{}: expected an object", path);
    if (!m.contains("role") || !m["role"].is_string()) fail("{}.role: expected a string", path);
    ChatMessage message;
    message.role = m["role"].get<std::string>();
    static const char* const kRoles[] = {"system", "developer", "user", "assistant", "tool", "latest_reminder"};
    if (std::none_of(std::begin(kRoles), std::end(kRoles), [&](const char* r) { return message.role == r; }))
      fail("{}.role: unknown role '{}' (expected system, developer, user, assistant, tool or latest_reminder)", path,
           message.role);
    message.content = text_field(m, "content", path, message.role == "tool" ? "\n\n" : "");
    if (message.role == "developer" && message.content.empty()) fail("{}.content: a developer message needs content", path);
    message.reasoning = m.contains("reasoning_content") ? text_field(m, "reasoning_content", path, "")
                                                         : text_field(m, "reasoning", path, "");
    if (m.contains("tools") && !m["tools"].is_null()) {
      if (!m["tools"].is_array()) fail("{}.tools: expected a list", path);
      if (!m["tools"].empty() && message.role != "system" && message.role != "developer")
        fail("{}.tools: tools can only be given on a system or developer message", path);
      for (size_t t = 0; t < m["tools"].size(); ++t) {
        const auto& tool = m["tools"][t];
        if (!tool.is_object() || !tool.contains("function") || !tool["function"].is_object())
          fail("{}.tools[{}]: expected {{\"type\": \"function\", \"function\": {{...}}}}", path, t);
      }
      message.tools = m["tools"];
    }
    if (m.contains("response_format") && !m["response_format"].is_null()) {
      message.response_format = m["response_format"];
      message.has_response_format = true;
    }
    if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
      if (message.role != "assistant") fail("{}.tool_calls: only assistant messages make tool calls", path);
      if (!m["tool_calls"].is_array()) fail("{}.tool_calls: expected a list", path);
      for (size_t c = 0; c < m["tool_calls"].size(); ++c)
        message.tool_calls.push_back(parse_tool_call(m["tool_calls"][c], fmt::format("{}.tool_calls[{}]", path, c)));
    }
    if (m.contains("tool_call_id") && m["tool_call_id"].is_string()) message.tool_call_id = m["tool_call_id"].get<std::string>();
    if (m.contains("task") && !m["task"].is_null()) {
      const std::string task = m["task"].is_string() ? m["task"].get<std::string>() : m["task"].dump();
      if (std::none_of(std::begin(kTasks), std::end(kTasks), [&](const char* t) { return task == t; }))
        fail("{}.task: unknown task '{}' (expected action, query, authority, domain, title or read_url)", path, task);
      message.task = task;
    }
    if (m.contains("wo_eos")) {
      if (!m["wo_eos"].is_boolean()) fail("{}.wo_eos: expected true or false", path);
      message.wo_eos = m["wo_eos"].get<bool>();
    }
    result.push_back(std::move(message));
  }
  return result;
}

std::vector<ChatMessage> merge_tool_messages(std::vector<ChatMessage> messages) {
  std::vector<ChatMessage> merged;
  for (ChatMessage& message : messages) {
    const bool after_user_blocks = !merged.empty() && merged.back().role == "user" && merged.back().has_blocks;
    if (message.role == "tool") {
      ChatBlock block{true, std::move(message.content), std::move(message.tool_call_id)};
      if (after_user_blocks) {
        merged.back().blocks.push_back(std::move(block));
      } else {
        ChatMessage user;
        user.role = "user";
        user.has_blocks = true;
        user.blocks.push_back(std::move(block));
        merged.push_back(std::move(user));
      }
    } else if (message.role == "user") {
      if (after_user_blocks && !merged.back().task) {
        merged.back().blocks.push_back({false, std::move(message.content), ""});
      } else {
        message.has_blocks = true;
        message.blocks.push_back({false, message.content, ""});
        merged.push_back(std::move(message));
      }
    } else {
      merged.push_back(std::move(message));
    }
  }
  return merged;
}

void sort_tool_results(std::vector<ChatMessage>& messages) {
  std::map<std::string, size_t> call_order;
  for (ChatMessage& message : messages) {
    if (message.role == "assistant" && !message.tool_calls.empty()) {
      call_order.clear();
      for (size_t i = 0; i < message.tool_calls.size(); ++i) {
        if (!message.tool_calls[i].id.empty()) call_order[message.tool_calls[i].id] = i;
      }
      continue;
    }
    if (message.role != "user" || !message.has_blocks || call_order.empty()) continue;
    std::vector<ChatBlock> results;
    for (const ChatBlock& block : message.blocks)
      if (block.is_tool_result) results.push_back(block);
    if (results.size() <= 1) continue;
    // Results with an id the calls do not name sort as if they answered the first call.
    auto rank = [&](const ChatBlock& b) {
      const auto it = call_order.find(b.tool_use_id);
      return it == call_order.end() ? size_t{0} : it->second;
    };
    std::stable_sort(results.begin(), results.end(), [&](const ChatBlock& a, const ChatBlock& b) { return rank(a) < rank(b); });
    size_t next = 0;
    for (ChatBlock& block : message.blocks)
      if (block.is_tool_result) block = results[next++];
  }
}

int last_user_index(const std::vector<ChatMessage>& messages) {
  for (int i = static_cast<int>(messages.size()) - 1; i >= 0; --i) {
    if (messages[i].role == "user" || messages[i].role == "developer") return i;
  }
  return -1;
}

std::vector<ChatMessage> drop_earlier_thinking(const std::vector<ChatMessage>& messages) {
  const int last_user = last_user_index(messages);
  std::vector<ChatMessage> result;
  for (int i = 0; i < static_cast<int>(messages.size()); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "user" || m.role == "system" || m.role == "tool" || m.role == "latest_reminder" || i >= last_user) {
      result.push_back(m);
    } else if (m.role == "assistant") {
      result.push_back(m);
      result.back().reasoning.clear();
    }
  }
  return result;
}

}  // namespace fp4serve::text
