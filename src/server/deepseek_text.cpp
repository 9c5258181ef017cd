#include "server/deepseek_text.h"

#include <filesystem>
#include <random>

#include "base/error.h"
#include "text/chat_encoding.h"
#include "text/output_parser.h"
#include "text/tokenizer_config.h"

namespace fp4serve::server {
namespace {

std::vector<uint32_t> unsigned_ids(std::span<const int32_t> tokens) {
  std::vector<uint32_t> ids;
  ids.reserve(tokens.size());
  for (int32_t t : tokens) {
    FP4SERVE_CHECK(t >= 0, "token id {} is negative", t);
    ids.push_back(static_cast<uint32_t>(t));
  }
  return ids;
}

class DeepSeekStreamingDecoder : public StreamingDecoder {
 public:
  DeepSeekStreamingDecoder(const text::Tokenizer& tokenizer, bool skip_special) : decoder_(tokenizer, skip_special) {}
  std::string push(int32_t token) override { return decoder_.push(static_cast<uint32_t>(token)); }
  std::string finish() override { return decoder_.finish(); }

 private:
  text::IncrementalDecoder decoder_;
};

class DeepSeekOutputParser : public OutputParser {
 public:
  DeepSeekOutputParser(text::ThinkingMode mode, std::string id_prefix) : parser_(mode, std::move(id_prefix)) {}
  OutputDelta push(std::string_view piece) override { return convert(parser_.push(piece)); }
  OutputDelta finish() override { return convert(parser_.finish()); }
  bool saw_tool_calls() const override { return !parser_.result().tool_calls.empty(); }

 private:
  static OutputDelta convert(text::CompletionDelta d) {
    OutputDelta out;
    out.reasoning_content = std::move(d.reasoning_content);
    out.content = std::move(d.content);
    for (auto& call : d.tool_calls) {
      out.tool_calls.push_back({static_cast<int>(call.index), std::move(call.id), std::move(call.name),
                                std::move(call.arguments)});
    }
    return out;
  }
  text::OutputParser parser_;
};

text::ThinkingMode text_mode(ThinkingMode mode) {
  return mode == ThinkingMode::kThinking ? text::ThinkingMode::kThinking : text::ThinkingMode::kChat;
}

}  // namespace

DeepSeekText::DeepSeekText(const std::string& path) : tokenizer_(text::Tokenizer::from_file(path)) {
  auto bos = tokenizer_.token_to_id(text::kBosToken);
  auto eos = tokenizer_.token_to_id(text::kEosToken);
  FP4SERVE_CHECK(bos && eos, "{}: no {} / {} tokens: not a DeepSeek tokenizer", path, text::kBosToken, text::kEosToken);
  bos_ = static_cast<int32_t>(*bos);
  eos_ = static_cast<int32_t>(*eos);
  // Whether plain prompts get BOS comes from tokenizer_config.json beside the
  // tokenizer, as in transformers.
  add_bos_ = text::tokenizer_adds_bos(path);
  revision_ = text::detect_encoding_revision(std::filesystem::path(path).parent_path().string());
}

std::vector<int32_t> DeepSeekText::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<uint32_t> ids = tokenizer_.encode(text);
  std::vector<int32_t> out;
  out.reserve(ids.size() + 1);
  if (add_special_tokens && add_bos_) out.push_back(bos_);
  for (uint32_t id : ids) out.push_back(static_cast<int32_t>(id));
  return out;
}

std::string DeepSeekText::decode(std::span<const int32_t> tokens, bool skip_special_tokens) const {
  return tokenizer_.decode(unsigned_ids(tokens), skip_special_tokens);
}

std::string DeepSeekText::token_bytes(int32_t token) const {
  FP4SERVE_CHECK(token >= 0 && token < vocab_size(), "token id {} is outside the vocabulary of {}", token, vocab_size());
  return tokenizer_.token_bytes(static_cast<uint32_t>(token));
}

std::unique_ptr<StreamingDecoder> DeepSeekText::streaming_decoder(bool skip_special_tokens) const {
  return std::make_unique<DeepSeekStreamingDecoder>(tokenizer_, skip_special_tokens);
}

std::string DeepSeekText::render_chat(const ChatRequest& request) const {
  nlohmann::ordered_json messages = request.messages;
  if (request.render_tools) text::attach_request_tools(messages, request.tools);
  if (request.response_format == "json_object") {
    // Rendered the way DeepSeek's encoder renders a message's response_format.
    nlohmann::ordered_json format = {{"type", "json_object"}};
    const std::string first_role = messages.empty() ? "" : messages[0].value("role", "");
    if (first_role == "system" || first_role == "developer") {
      messages[0]["response_format"] = format;
    } else {
      messages.insert(messages.begin(),
                      nlohmann::ordered_json{{"role", "system"}, {"content", ""}, {"response_format", format}});
    }
  }
  text::ChatEncodingOptions options;
  options.thinking_mode = text_mode(request.thinking);
  options.revision = revision_;
  text::parse_reasoning_effort(request.reasoning_effort, &options.reasoning_effort);
  return text::encode_chat(messages, options);
}

std::unique_ptr<OutputParser> DeepSeekText::output_parser(ThinkingMode mode, bool tools) const {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::make_unique<DeepSeekOutputParser>(text_mode(mode), fmt::format("call_{:012x}_", rng() >> 16));
}

std::vector<int32_t> DeepSeekText::plain_word_tokens() const {
  std::vector<int32_t> words;
  for (int32_t id = 0; id < vocab_size(); ++id) {
    if (tokenizer_.is_special(static_cast<uint32_t>(id))) continue;
    const std::string& bytes = tokenizer_.token_bytes(static_cast<uint32_t>(id));
    bool plain = !bytes.empty();
    for (size_t i = 0; i < bytes.size() && plain; ++i) {
      plain = (bytes[i] >= 'a' && bytes[i] <= 'z') || (i == 0 && bytes[i] == ' ' && bytes.size() > 1);
    }
    if (plain) words.push_back(id);
  }
  return words;
}

}  // namespace fp4serve::server
