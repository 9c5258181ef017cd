// DeepSeek-V4 prompt rendering against goldens: DeepSeek's own cases 1 and 2
// and hand-written cases, one per rule of DeepSeek's encoding/encoding_dsv4.py
// (tests/text/goldens/cases.json states the rule each one checks).
#include "text/chat_encoding.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "base/error.h"
#include "text/python_json.h"

namespace fp4serve::text {
namespace {

const std::string kGoldens = std::string(FP4SERVE_SOURCE_DIR) + "/tests/text/goldens/";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string run(const std::string& command) {
  std::array<char, 4096> buffer{};
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  size_t n;
  while (pipe && (n = fread(buffer.data(), 1, buffer.size(), pipe.get())) > 0) out.append(buffer.data(), n);
  return out;
}

struct GoldenCase {
  std::string name, rule, mode, effort, revision;
  bool keep_thinking = false;
};

std::vector<GoldenCase> golden_cases() {
  const auto manifest = nlohmann::json::parse(read_file(kGoldens + "cases.json"));
  std::vector<GoldenCase> cases;
  for (const auto& c : manifest["cases"]) {
    cases.push_back({c["name"], c["rule"], c["thinking_mode"], c.value("reasoning_effort", ""), c["revision"],
                     c.value("keep_thinking", false)});
  }
  return cases;
}

TEST(ChatEncoding, GoldensThroughTheApi) {
  const auto cases = golden_cases();
  ASSERT_GE(cases.size(), 20u);
  for (const GoldenCase& c : cases) {
    auto input = nlohmann::ordered_json::parse(read_file(kGoldens + c.name + ".input.json"));
    nlohmann::ordered_json messages = input.is_array() ? input : input["messages"];
    if (input.is_object() && input.contains("tools")) attach_request_tools(messages, input["tools"]);
    ChatEncodingOptions options;
    options.thinking_mode = c.mode == "chat" ? ThinkingMode::kChat : ThinkingMode::kThinking;
    options.reasoning_effort = c.effort == "max" ? ReasoningEffort::kMax : c.effort == "high" ? ReasoningEffort::kHigh : ReasoningEffort::kDefault;
    options.revision = c.revision == "v4-0731" ? EncodingRevision::kV4_0731 : EncodingRevision::kV4;
    options.drop_thinking = !c.keep_thinking;
    EXPECT_EQ(encode_chat(messages, options), read_file(kGoldens + c.name + ".output.txt")) << c.name << ": " << c.rule;
  }
}

TEST(ChatEncoding, GoldensThroughTheCliExactly) {
  const std::string binary = std::string(FP4SERVE_BINARY_DIR) + "/bin/fp4serve";
  for (const GoldenCase& c : golden_cases()) {
    std::string command = binary + " render-chat --messages '" + kGoldens + c.name + ".input.json' --thinking-mode " + c.mode +
                          " --encoding-revision " + c.revision;
    if (!c.effort.empty()) command += " --reasoning-effort " + c.effort;
    if (c.keep_thinking) command += " --keep-thinking";
    EXPECT_EQ(run(command), read_file(kGoldens + c.name + ".output.txt")) << c.name;
  }
}

TEST(ChatEncoding, ContextShapesTransitionsButIsNotRenderedAgain) {
  // Rendering turn by turn: the context's last user turn is not the last one
  // any more, and no BOS is written after a context.
  const auto context = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "Q1"},
      {"role": "assistant", "reasoning_content": "R1", "content": "A1"}])");
  const auto messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "Q2"}])");
  EXPECT_EQ(encode_chat(messages, {}, context), "<｜User｜>Q2<｜Assistant｜><think>");
  ChatEncodingOptions chat;
  chat.thinking_mode = ThinkingMode::kChat;
  EXPECT_EQ(encode_chat(messages, chat, context), "<｜User｜>Q2<｜Assistant｜></think>");
}

TEST(ChatEncoding, EffortTextsHaveTheSpecifiedLengths) {
  // DeepSeek's encoding_dsv4.py (April and 0731 releases): the April "max" text is 476 bytes, the 0731 "max" text 528.
  EXPECT_EQ(reasoning_effort_prompt(EncodingRevision::kV4, ReasoningEffort::kMax).size(), 476u);
  EXPECT_EQ(reasoning_effort_prompt(EncodingRevision::kV4, ReasoningEffort::kHigh).size(), 0u);
  EXPECT_EQ(reasoning_effort_prompt(EncodingRevision::kV4_0731, ReasoningEffort::kHigh).size(), 476u);
  EXPECT_EQ(reasoning_effort_prompt(EncodingRevision::kV4_0731, ReasoningEffort::kMax).size(), 528u);
  EXPECT_NE(reasoning_effort_prompt(EncodingRevision::kV4_0731, ReasoningEffort::kMax).find("maximum \xE2\x80\x94 exhaustive"),
            std::string_view::npos);
}

void expect_error(const nlohmann::ordered_json& messages, const std::string& needle) {
  try {
    encode_chat(messages, {});
    ADD_FAILURE() << "no error for " << messages.dump();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

void expect_error(const char* messages_json, const std::string& needle) {
  expect_error(nlohmann::ordered_json::parse(messages_json), needle);
}

TEST(ChatEncoding, MalformedMessagesNameTheField) {
  expect_error(R"({"role": "user"})", "messages: expected a list");
  expect_error(R"([{"role": "robot", "content": "x"}])", "messages[0].role: unknown role 'robot'");
  expect_error(R"([{"content": "x"}])", "messages[0].role");
  expect_error(R"([{"role": "developer", "content": ""}])", "messages[0].content: a developer message needs content");
  expect_error(R"([{"role": "user", "content": 5}])", "messages[0].content");
  expect_error(R"([{"role": "user", "content": [{"type": "image_url"}]}])", "messages[0].content[0]");
  expect_error(R"([{"role": "user", "content": "x", "tool_calls": []}])", "messages[0].tool_calls");
  expect_error(R"([{"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}])",
               "messages[0].tool_calls[0].function.name");
  expect_error(R"([{"role": "user", "content": "x", "task": "dance"}])", "messages[0].task: unknown task 'dance'");
  expect_error(R"([{"role": "user", "content": "x", "tools": [{"type": "function", "function": {"name": "f"}}]}])",
               "messages[0].tools: tools can only be given on a system or developer message");
  expect_error(R"([{"role": "system", "content": "x", "tools": [{"type": "function"}]}])", "messages[0].tools[0]");
  // Built in code: nlohmann's parser already refuses such bytes.
  nlohmann::ordered_json bad_bytes = nlohmann::ordered_json::array();
  bad_bytes.push_back({{"role", "user"}, {"content", std::string("ok \xC3")}});
  expect_error(bad_bytes, "messages[0].content is not valid UTF-8");
}

TEST(PythonJson, MatchesPythonJsonDumps) {
  // Expected strings are what CPython's json.dumps(x, ensure_ascii=False) prints.
  const std::pair<const char*, const char*> cases[] = {
      {"1.0", "1.0"},
      {"1e16", "1e+16"},
      {"1e15", "1000000000000000.0"},
      {"0.0001", "0.0001"},
      {"0.00001", "1e-05"},
      {"1.5e-7", "1.5e-07"},
      {"-0.0", "-0.0"},
      {"123456789.125", "123456789.125"},
      {"0.30000000000000004", "0.30000000000000004"},
      {"1e22", "1e+22"},
      {"5e-324", "5e-324"},
      {"1.7976931348623157e308", "1.7976931348623157e+308"},
      {"12345678901234567890", "12345678901234567890"},
      {"-42", "-42"},
      {R"({"b": [1, true, null], "a": {"x": "y"}})", R"({"b": [1, true, null], "a": {"x": "y"}})"},
      {R"([])", "[]"},
      {R"({})", "{}"},
      {R"("a\"b\\c\n\t\r\b\f\u0001\u007f é😀")", "\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\x7f é😀\""},
  };
  for (const auto& [input, expected] : cases) {
    EXPECT_EQ(python_json_dumps(nlohmann::ordered_json::parse(input)), expected) << input;
  }
}

}  // namespace
}  // namespace fp4serve::text
