// Request bodies to JSON with limits: depth, trailing bytes (a NUL among them),
// lone surrogates, unread fields, duplicate keys, and work linear in the keys.
#include "server/request_json.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "server/api_error.h"
#include "server/openai_request.h"

namespace fp4serve::server {
namespace {

const std::string kMessages = R"("messages": [{"role": "user", "content": "hi"}])";
constexpr std::string_view kMessagesOnly[] = {"messages"};

std::string message_of(std::string_view body) {
  try {
    parse_chat_request(body);
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400) << body.substr(0, 200);
    return e.what();
  }
  ADD_FAILURE() << "accepted: " << body.substr(0, 200);
  return {};
}

std::string nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(RequestJson, NulAndOtherTrailingBytesAreRefusedNotCutOff) {
  // nlohmann's lexer reads a NUL as the end of the input: this body used to be accepted.
  const std::string with_nul = "{" + kMessages + "}" + std::string(1, '\0') + "garbage";
  const std::string message = message_of(with_nul);
  EXPECT_NE(message.find("NUL"), std::string::npos) << message;
  EXPECT_NE(message.find("byte offset " + std::to_string(kMessages.size() + 2)), std::string::npos) << message;
  EXPECT_NE(message_of("{" + kMessages + "} {}").find("expected end of input"), std::string::npos);
  EXPECT_NE(message_of("{" + kMessages + ", \"model\": \"a" + std::string(1, '\0') + "b\"}").find("NUL"), std::string::npos);
  parse_chat_request("{" + kMessages + "}\r\n\t ");  // trailing whitespace is JSON
}

TEST(RequestJson, NestingBeyond256IsRefusedEvenInAnUnreadField) {
  // 255 levels inside the body object make 256 in all: accepted.
  parse_chat_request("{" + kMessages + ", \"junk\": " + nested(255) + "}");
  for (const std::string& body : {"{" + kMessages + ", \"junk\": " + nested(256) + "}",
                                  "{" + kMessages + ", \"stop\": " + nested(300) + "}", nested(100000)}) {
    const std::string message = message_of(body);
    EXPECT_NE(message.find("deeper than 256 levels"), std::string::npos) << message;
  }
}

TEST(RequestJson, LoneSurrogatesAreRefusedWithTheirPosition) {
  // A 400, not a silent U+FFFD: the escape has no UTF-8 form, and replacing it
  // would change the prompt the client sent.
  for (const char* escape : {"\\ud800", "\\udfff", "\\ud800\\u0041", "\\udc00\\ud800"}) {
    const std::string message = message_of("{" + kMessages + ", \"user\": \"" + escape + "\"}");
    EXPECT_NE(message.find("surrogate"), std::string::npos) << escape << ": " << message;
    EXPECT_NE(message.find("byte offset"), std::string::npos) << message;
  }
  // A proper pair is one character (U+1F600).
  ChatRequest r = parse_chat_request(R"({"messages": [{"role": "user", "content": "\ud83d\ude00"}]})");
  EXPECT_EQ(r.messages[0]["content"], "\xF0\x9F\x98\x80");
}

TEST(RequestJson, UnreadTopLevelFieldsAreDroppedAndDuplicateKeysKeepTheLast) {
  const auto body = parse_request_object(R"({"junk": {"a": [1, 2]}, "messages": 1, "messages": [2], "x": 3})",
                                         kMessagesOnly);
  EXPECT_EQ(body, nlohmann::ordered_json::parse(R"({"messages": [2]})"));
  // Nested objects keep every key, in order, the last of duplicates at the first one's place.
  const auto nested_object = parse_request_object(R"({"messages": {"b": 1, "a": 2, "b": 3}})", kMessagesOnly);
  EXPECT_EQ(nested_object["messages"].dump(), R"({"b":3,"a":2})");
  EXPECT_EQ(parse_chat_request("{" + kMessages + R"(, "temperature": 0.5, "temperature": 0.25})").options.sampling.temperature,
            0.25);
}

TEST(RequestJson, ObjectsWithManyKeysParseInLinearTime) {
  // nlohmann's ordered_json compares each new key with all earlier ones: 80,000
  // keys (870 KB) took 23 s. Both the body and a message object carry them here.
  std::string keys;
  for (int i = 0; i < 100000; ++i) keys += "\"k" + std::to_string(i) + "\": 0, ";
  const std::string body = "{" + keys + R"("messages": [{)" + keys + R"("role": "user", "content": "hi"}]})";
  const auto start = std::chrono::steady_clock::now();
  ChatRequest r = parse_chat_request(body);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.messages[0]["role"], "user");
  EXPECT_EQ(r.messages[0].size(), 100002u);
  EXPECT_LT(seconds, 5.0) << "a linear parse takes well under a second";
}

TEST(RequestJson, EveryFieldAnEndpointReadsIsKept) {
  // A field missing from an endpoint's list would be silently dropped; a wrong
  // type in each one must still reach its validator and name it.
  const char* const chat_fields[] = {
      "model", "temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty", "repetition_penalty",
      "seed", "logit_bias", "stop", "stop_token_ids", "include_stop_str_in_output", "ignore_eos", "skip_special_tokens",
      "n", "stream", "max_tokens", "logprobs", "tools", "thinking", "chat_template_kwargs",
      "reasoning_effort", "response_format", "add_generation_prompt", "max_completion_tokens", "top_logprobs"};
  for (const char* field : chat_fields) {
    try {
      parse_chat_request("{" + kMessages + ", \"" + field + "\": [[]]}");
      ADD_FAILURE() << field << " accepted an array of arrays";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.param().substr(0, std::string(field).size()), field) << e.what();
    }
  }
  for (const char* field : {"prompt", "echo", "suffix", "max_tokens", "n"}) {
    try {
      parse_completion_request(std::string("{\"prompt\": \"a\", \"") + field + "\": {\"x\": 1}}");
      ADD_FAILURE() << field << " accepted an object";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.param(), field) << e.what();
    }
  }
}

}  // namespace
}  // namespace fp4serve::server
