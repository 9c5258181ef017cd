// generation_config.json as the default of the sampling fields a request omits
// (vLLM's --generation-config auto), and the errors a malformed file gives.
#include "server/generation_defaults.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "server/openai_request.h"

namespace fp4serve::server {
namespace {

class GenerationDefaults : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("fp4serve-genconfig-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& text) { std::ofstream(dir_ / "generation_config.json") << text; }
  std::string error_of(const std::string& text) {
    write(text);
    try {
      read_generation_config(dir_.string());
    } catch (const Error& e) {
      return e.what();
    }
    return "accepted";
  }
  std::filesystem::path dir_;
};

TEST_F(GenerationDefaults, NoFileKeepsOpenAIDefaults) {
  SamplingDefaults d = read_generation_config(dir_.string());
  EXPECT_EQ(d.temperature, 1.0);
  EXPECT_EQ(d.top_p, 1.0);
  EXPECT_EQ(d.top_k, 0);
  EXPECT_EQ(d.min_p, 0.0);
  EXPECT_EQ(d.repetition_penalty, 1.0);
  EXPECT_EQ(describe_sampling_defaults(d), "");
}

TEST_F(GenerationDefaults, ReadsTheSamplingFieldsAndIgnoresTheRest) {
  write(R"({"bos_token_id": 0, "do_sample": false, "temperature": 0.6, "top_p": 0.9, "top_k": 40,
            "min_p": null, "repetition_penalty": 1.1, "transformers_version": "5.17.0"})");
  SamplingDefaults d = read_generation_config(dir_.string());
  EXPECT_EQ(d.temperature, 0.6);
  EXPECT_EQ(d.top_p, 0.9);
  EXPECT_EQ(d.top_k, 40);
  EXPECT_EQ(d.min_p, 0.0);  // null: unset, as in transformers
  EXPECT_EQ(d.repetition_penalty, 1.1);
  EXPECT_EQ(describe_sampling_defaults(d), "temperature 0.6, top_p 0.9, top_k 40, repetition_penalty 1.1");
}

TEST_F(GenerationDefaults, RequestsOverrideDefaultsFieldByField) {
  SamplingDefaults d{.temperature = 0.6, .top_p = 0.9, .top_k = 40, .min_p = 0.05, .repetition_penalty = 1.1};
  const std::string prompt = R"("prompt": "hi")";
  CompletionRequest implicit = parse_completion_request("{" + prompt + "}", d);
  EXPECT_DOUBLE_EQ(implicit.options.sampling.temperature, 0.6);
  EXPECT_DOUBLE_EQ(implicit.options.sampling.top_p, 0.9);
  EXPECT_EQ(implicit.options.sampling.top_k, 40);
  EXPECT_DOUBLE_EQ(implicit.options.sampling.min_p, 0.05);
  EXPECT_DOUBLE_EQ(implicit.options.sampling.repetition_penalty, 1.1);
  CompletionRequest given =
      parse_completion_request("{" + prompt + R"(, "temperature": 0, "top_k": -1, "min_p": 0})", d);
  EXPECT_EQ(given.options.sampling.temperature, 0.0);
  EXPECT_EQ(given.options.sampling.top_k, 0);
  EXPECT_EQ(given.options.sampling.min_p, 0.0);
  EXPECT_DOUBLE_EQ(given.options.sampling.top_p, 0.9);  // not given: still the default
  ChatRequest chat = parse_chat_request(R"({"messages": [{"role": "user", "content": "hi"}]})", d);
  EXPECT_DOUBLE_EQ(chat.options.sampling.temperature, 0.6);
  CompletionRequest openai = parse_completion_request("{" + prompt + "}");
  EXPECT_EQ(openai.options.sampling.temperature, 1.0);
}

TEST_F(GenerationDefaults, MalformedFilesNameTheFileAndField) {
  EXPECT_NE(error_of("{not json").find("generation_config.json: not valid JSON"), std::string::npos);
  EXPECT_NE(error_of("[1]").find("expected a JSON object"), std::string::npos);
  EXPECT_NE(error_of(R"({"temperature": "hot"})").find("'temperature' must be a number"), std::string::npos);
  EXPECT_NE(error_of(R"({"temperature": 3})").find("'temperature' is 3, outside [0, 2]"), std::string::npos);
  EXPECT_NE(error_of(R"({"top_p": 0})").find("'top_p' must be in (0, 1]"), std::string::npos);
  EXPECT_NE(error_of(R"({"top_k": 2.5})").find("'top_k' must be an integer"), std::string::npos);
  EXPECT_NE(error_of(R"({"min_p": -0.1})").find("'min_p'"), std::string::npos);
  EXPECT_NE(error_of(R"({"repetition_penalty": 0})").find("'repetition_penalty' must be > 0"), std::string::npos);
}

TEST_F(GenerationDefaults, ThinkingDefaultFollowsTheModelDirectory) {
  auto write_file = [&](const char* name, const std::string& text) { std::ofstream(dir_ / name) << text; };
  EXPECT_TRUE(read_default_thinking(dir_.string()));  // no files: DeepSeek-V4 thinks by default
  write_file("tokenizer_config.json", R"({"default_chat_template_kwargs": {"enable_thinking": false}})");
  EXPECT_FALSE(read_default_thinking(dir_.string()));
  // generation_config.json comes first.
  write(R"({"temperature": 0.6, "default_chat_template_kwargs": {"thinking": true}})");
  EXPECT_TRUE(read_default_thinking(dir_.string()));
  write(R"({"default_chat_template_kwargs": {"thinking": false, "enable_thinking": false}})");
  EXPECT_FALSE(read_default_thinking(dir_.string()));
  // A file without the field defers to the next one.
  write(R"({"temperature": 0.6})");
  EXPECT_FALSE(read_default_thinking(dir_.string()));

  auto thinking_error = [&](const std::string& text) {
    write(text);
    try {
      read_default_thinking(dir_.string());
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(thinking_error(R"({"default_chat_template_kwargs": {"thinking": "no"}})")
                .find("generation_config.json: 'default_chat_template_kwargs.thinking' must be a boolean"),
            std::string::npos);
  EXPECT_NE(thinking_error(R"({"default_chat_template_kwargs": true})").find("must be an object"), std::string::npos);
  EXPECT_NE(thinking_error(R"({"default_chat_template_kwargs": {"thinking": true, "enable_thinking": false}})")
                .find("different values"),
            std::string::npos);
}

TEST_F(GenerationDefaults, DefaultModelAnswersInContent) {
  // models/default was fine-tuned on answers without reasoning; its config says so.
  EXPECT_FALSE(read_default_thinking(std::string(FP4SERVE_SOURCE_DIR) + "/models/default"));
}

TEST_F(GenerationDefaults, RequestsOverrideTheThinkingDefault) {
  SamplingDefaults chat_mode;
  chat_mode.thinking = false;
  const std::string messages = R"("messages": [{"role": "user", "content": "hi"}])";
  EXPECT_EQ(parse_chat_request("{" + messages + "}", chat_mode).thinking, ThinkingMode::kChat);
  EXPECT_EQ(parse_chat_request("{" + messages + "}").thinking, ThinkingMode::kThinking);
  for (const char* explicit_thinking : {R"("reasoning_effort": "high")", R"("chat_template_kwargs": {"thinking": true})",
                                        R"("thinking": {"type": "enabled"})"}) {
    EXPECT_EQ(parse_chat_request("{" + messages + ", " + explicit_thinking + "}", chat_mode).thinking,
              ThinkingMode::kThinking)
        << explicit_thinking;
  }
  EXPECT_EQ(parse_tokenize_request("{" + messages + "}", chat_mode).chat->thinking, ThinkingMode::kChat);
}

}  // namespace
}  // namespace fp4serve::server
