// `fp4serve render-chat`: prints the DeepSeek-V4 prompt for a messages file,
// exactly (no newline added). The file is a list of messages, or an object
// {"messages": [...], "tools": [...]} whose tools attach to the first message.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "cli/command.h"
#include "text/chat_encoding.h"

namespace fp4serve::cli {
namespace {

nlohmann::ordered_json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  std::ostringstream content;
  content << in.rdbuf();
  try {
    return nlohmann::ordered_json::parse(content.str());
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
}

const RegisterCommand command{Command{
    "render-chat", "Render a DeepSeek-V4 chat prompt from a messages file",
    [](CLI::App& sub) -> std::function<int()> {
      auto messages_path = std::make_shared<std::string>();
      auto mode = std::make_shared<std::string>();
      auto effort = std::make_shared<std::string>();
      auto revision = std::make_shared<std::string>("v4");
      auto keep_thinking = std::make_shared<bool>(false);
      sub.add_option("--messages", *messages_path, "JSON: a list of messages or {\"messages\": [...], \"tools\": [...]}")
          ->required();
      sub.add_option("--thinking-mode", *mode, "chat or thinking")->required()->check(CLI::IsMember({"chat", "thinking"}));
      sub.add_option("--reasoning-effort", *effort,
                     "low (default), high or max (thinking mode; the April encoding renders low as high)")
          ->check(CLI::IsMember({"low", "high", "max"}));
      sub.add_option("--encoding-revision", *revision, "v4 (April release, default) or v4-0731")
          ->check(CLI::IsMember({"v4", "v4-0731"}));
      sub.add_flag("--keep-thinking", *keep_thinking, "Keep earlier turns' reasoning (drop_thinking=False)");
      return [=] {
        nlohmann::ordered_json input = read_json_file(*messages_path);
        nlohmann::ordered_json messages;
        if (input.is_array()) {
          messages = input;
        } else if (input.is_object() && input.contains("messages")) {
          messages = input["messages"];
          if (input.contains("tools")) text::attach_request_tools(messages, input["tools"]);
        } else {
          fail("{}: expected a list of messages or an object with \"messages\"", *messages_path);
        }
        text::ChatEncodingOptions options;
        options.thinking_mode = *mode == "chat" ? text::ThinkingMode::kChat : text::ThinkingMode::kThinking;
        if (!effort->empty()) text::parse_reasoning_effort(*effort, &options.reasoning_effort);
        options.revision = *revision == "v4-0731" ? text::EncodingRevision::kV4_0731 : text::EncodingRevision::kV4;
        options.drop_thinking = !*keep_thinking;
        const std::string prompt = text::encode_chat(messages, options);
        std::fwrite(prompt.data(), 1, prompt.size(), stdout);
        return 0;
      };
    }}};

}  // namespace
}  // namespace fp4serve::cli
