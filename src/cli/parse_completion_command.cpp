// `fp4serve parse-completion`: splits a generated text (a file) into
// reasoning_content, content and OpenAI-shaped tool_calls, printed as one JSON object.
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/error.h"
#include "cli/command.h"
#include "text/output_parser.h"
#include "text/utf8.h"

namespace fp4serve::cli {
namespace {

const RegisterCommand command{Command{
    "parse-completion", "Split generated text into reasoning, content and tool calls (JSON)",
    [](CLI::App& sub) -> std::function<int()> {
      auto text_file = std::make_shared<std::string>();
      auto mode = std::make_shared<std::string>();
      sub.add_option("--text-file", *text_file, "The generated text (what followed the prompt)")->required();
      sub.add_option("--thinking-mode", *mode, "chat or thinking")->required()->check(CLI::IsMember({"chat", "thinking"}));
      return [=] {
        std::ifstream in(*text_file, std::ios::binary);
        if (!in) fail("{}: cannot open", *text_file);
        std::ostringstream content;
        content << in.rdbuf();
        const std::string text = content.str();
        text::check_utf8(text, *text_file);
        const bool thinking = *mode == "thinking";
        const text::ParsedCompletion parsed =
            text::parse_completion(text, thinking ? text::ThinkingMode::kThinking : text::ThinkingMode::kChat);
        nlohmann::ordered_json out;
        out["reasoning_content"] = thinking ? nlohmann::ordered_json(parsed.reasoning_content) : nlohmann::ordered_json();
        out["content"] = parsed.content;
        out["tool_calls"] = nlohmann::ordered_json::array();
        for (const auto& call : parsed.tool_calls) {
          out["tool_calls"].push_back({{"id", call.id},
                                       {"type", "function"},
                                       {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
        }
        if (!parsed.malformed.empty()) std::fprintf(stderr, "warning: %s: %s\n", text_file->c_str(), parsed.malformed.c_str());
        std::printf("%s\n", out.dump().c_str());
        return 0;
      };
    }}};

}  // namespace
}  // namespace fp4serve::cli
