// Request validation: defaults, the field forms clients send, and the status,
// field and message of every refusal.
#include "server/openai_request.h"

#include <gtest/gtest.h>

#include "server/api_error.h"

namespace fp4serve::server {
namespace {

const std::string kMessages = R"("messages": [{"role": "user", "content": "hi"}])";

ApiError refusal(const std::string& body, bool chat = true) {
  try {
    if (chat) parse_chat_request(body);
    else parse_completion_request(body);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << body;
  return ApiError(0, "");
}

TEST(ChatRequest, Defaults) {
  ChatRequest r = parse_chat_request("{" + kMessages + "}");
  EXPECT_FALSE(r.model.has_value());
  EXPECT_EQ(r.thinking, ThinkingMode::kThinking);  // DeepSeek-V4 thinks by default
  EXPECT_EQ(r.reasoning_effort, "low");  // the 0731 encoding's default level
  EXPECT_EQ(r.options.sampling.temperature, 1.0);
  EXPECT_EQ(r.options.sampling.top_p, 1.0);
  EXPECT_EQ(r.options.sampling.top_k, 0);
  EXPECT_EQ(r.options.n, 1);
  EXPECT_FALSE(r.options.max_tokens.has_value());  // fill the context
  EXPECT_FALSE(r.options.stream);
  EXPECT_EQ(r.options.sampling.top_logprobs, -1);
  EXPECT_FALSE(r.render_tools);
}

TEST(ChatRequest, FieldsAndNulls) {
  ChatRequest r = parse_chat_request("{" + kMessages + R"(, "model": "m", "temperature": 0, "top_p": 0.5, "top_k": -1,
      "min_p": 0.1, "seed": -3, "stop": "END", "max_tokens": 9, "max_completion_tokens": 4, "n": 2,
      "logprobs": true, "top_logprobs": 5, "stream": true, "stream_options": {"include_usage": true},
      "presence_penalty": null, "logit_bias": {"17": -100}})");
  EXPECT_EQ(*r.model, "m");
  EXPECT_EQ(r.options.sampling.temperature, 0.0);
  EXPECT_EQ(r.options.sampling.top_p, 0.5);
  EXPECT_EQ(r.options.sampling.top_k, 0);
  EXPECT_EQ(r.options.sampling.seed, static_cast<uint64_t>(int64_t{-3}));
  EXPECT_EQ(r.options.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(*r.options.max_tokens, 4);
  EXPECT_EQ(r.options.n, 2);
  EXPECT_EQ(r.options.sampling.top_logprobs, 5);
  EXPECT_TRUE(r.options.include_usage);
  EXPECT_EQ(r.options.sampling.presence_penalty, 0.0);
  ASSERT_EQ(r.options.sampling.logit_bias.size(), 1u);
  EXPECT_EQ(r.options.sampling.logit_bias[0], std::make_pair(17, -100.0));
}

TEST(ChatRequest, ThinkingForms) {
  struct Case {
    const char* extra;
    ThinkingMode mode;
    const char* effort;
  };
  const Case cases[] = {
      {R"("thinking": {"type": "disabled"})", ThinkingMode::kChat, "low"},
      {R"("thinking": false)", ThinkingMode::kChat, "low"},
      {R"("chat_template_kwargs": {"thinking": false})", ThinkingMode::kChat, "low"},
      {R"("chat_template_kwargs": {"enable_thinking": false})", ThinkingMode::kChat, "low"},
      {R"("reasoning_effort": "none")", ThinkingMode::kChat, "low"},
      {R"("reasoning_effort": "max")", ThinkingMode::kThinking, "max"},
      // DeepSeek's API mapping onto the 0731 levels: minimal/low -> low, medium/high/xhigh -> high.
      {R"("reasoning_effort": "minimal")", ThinkingMode::kThinking, "low"},
      {R"("reasoning_effort": "low")", ThinkingMode::kThinking, "low"},
      {R"("reasoning_effort": "high")", ThinkingMode::kThinking, "high"},
      {R"("reasoning_effort": "xhigh")", ThinkingMode::kThinking, "high"},
      {R"("thinking": {"type": "enabled"}, "reasoning_effort": "medium")", ThinkingMode::kThinking, "high"},
  };
  for (const auto& c : cases) {
    ChatRequest r = parse_chat_request("{" + kMessages + ", " + c.extra + "}");
    EXPECT_EQ(r.thinking, c.mode) << c.extra;
    EXPECT_EQ(r.reasoning_effort, c.effort) << c.extra;
  }
}

TEST(ChatRequest, ToolsAndMessages) {
  ChatRequest r = parse_chat_request(R"({"messages": [
      {"role": "system", "content": [{"type": "text", "text": "be brief"}]},
      {"role": "user", "content": "weather?"},
      {"role": "assistant", "content": null, "reasoning_content": "call it",
       "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    "tool_choice": "auto"})");
  EXPECT_TRUE(r.render_tools);
  EXPECT_EQ(r.messages.size(), 4u);
  EXPECT_FALSE(parse_chat_request("{" + kMessages + R"(, "tools": [{"type": "function", "function": {"name": "f"}}],
      "tool_choice": "none"})").render_tools);
}

TEST(ChatRequest, Refusals) {
  struct Case {
    std::string body;
    int status;
    std::string param;
  };
  const Case cases[] = {
      {"{", 400, ""},
      {"{" + kMessages + R"(, "temperature": 1e999})", 400, ""},  // number overflow, not a parse error
      {"[1]", 400, ""},
      {R"({"messages": []})", 400, "messages"},
      {"{" + kMessages + R"(, "temperature": "1"})", 400, "temperature"},
      {"{" + kMessages + R"(, "temperature": 2.5})", 400, "temperature"},
      {"{" + kMessages + R"(, "n": 1000})", 400, "n"},
      {"{" + kMessages + R"(, "max_tokens": -1})", 400, "max_tokens"},
      {"{" + kMessages + R"(, "seed": 18446744073709551615})", 400, "seed"},
      {"{" + kMessages + R"(, "stream_options": {}})", 400, "stream_options"},
      {"{" + kMessages + R"(, "stream": true, "stream_options": {"include_usage": 1}})", 400,
       "stream_options.include_usage"},
      {"{" + kMessages + R"(, "tool_choice": "required", "tools": [{"type": "function", "function": {"name": "f"}}]})",
       400, "tool_choice"},
      {"{" + kMessages + R"(, "response_format": {"type": "json_schema", "json_schema": {}}})", 400, "response_format"},
      {R"({"messages": [{"role": "tool"}]})", 400, "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": "text"}]}]})", 400, "messages[0].content[0]"},
  };
  for (const auto& c : cases) {
    ApiError e = refusal(c.body);
    EXPECT_EQ(e.status(), c.status) << c.body;
    EXPECT_EQ(e.param(), c.param) << c.body;
    EXPECT_EQ(e.to_json()["error"]["type"], "invalid_request_error") << c.body;
  }
  EXPECT_NE(std::string(refusal("{\"messages\": \"\xC3\x28\"}").what()).find("byte offset 14"), std::string::npos);
}

TEST(CompletionRequest, PromptForms) {
  auto prompts = [](const std::string& p) { return parse_completion_request(R"({"prompt": )" + p + "}").prompts; };
  EXPECT_EQ(std::get<std::string>(prompts(R"("abc")")[0]), "abc");
  EXPECT_EQ(prompts(R"(["a", "b"])").size(), 2u);
  EXPECT_EQ(std::get<std::vector<int32_t>>(prompts("[1, 2, 3]")[0]), (std::vector<int32_t>{1, 2, 3}));
  auto mixed = prompts(R"([[4, 5], "x"])");
  EXPECT_EQ(std::get<std::vector<int32_t>>(mixed[0]), (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(*parse_completion_request(R"({"prompt": "a"})").options.max_tokens, 16);  // OpenAI's default
  CompletionRequest lp = parse_completion_request(R"({"prompt": "a", "logprobs": 3})");
  EXPECT_TRUE(lp.options.logprobs);
  EXPECT_EQ(lp.options.sampling.top_logprobs, 3);
  EXPECT_EQ(refusal(R"({"prompt": [[]]})", false).param(), "prompt");
  EXPECT_EQ(refusal(R"({"prompt": [1.5]})", false).param(), "prompt");
}

TEST(TokenizeRequest, BothForms) {
  TokenizeRequest text = parse_tokenize_request(R"({"prompt": "hi"})");
  EXPECT_EQ(*text.prompt, "hi");
  EXPECT_TRUE(text.add_special_tokens);
  TokenizeRequest chat = parse_tokenize_request("{" + kMessages + "}");
  ASSERT_TRUE(chat.chat.has_value());
  EXPECT_FALSE(chat.add_special_tokens);
  EXPECT_THROW(parse_tokenize_request("{}"), ApiError);
  EXPECT_EQ(parse_detokenize_request(R"({"tokens": [1, 2]})").tokens, (std::vector<int32_t>{1, 2}));
  EXPECT_THROW(parse_detokenize_request(R"({"tokens": [-1]})"), ApiError);
}

}  // namespace
}  // namespace fp4serve::server
