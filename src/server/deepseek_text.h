// The real text layer for serving DeepSeek-V4: the tokenizer from
// tokenizer.json, DeepSeek's chat encoding and its output parser (src/text),
// behind the server's ServingText interface.
#pragma once

#include <string>

#include "server/serving_text.h"
#include "text/chat_encoding.h"
#include "text/tokenizer.h"

namespace fp4serve::server {

class DeepSeekText : public ServingText {
 public:
  // Throws fp4serve::Error naming the file when it cannot be read or lacks
  // the DeepSeek special tokens.
  explicit DeepSeekText(const std::string& tokenizer_json_path);

  int vocab_size() const override { return static_cast<int>(tokenizer_.vocab_size()); }
  int32_t eos_token() const override { return eos_; }
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const override;
  std::string decode(std::span<const int32_t> tokens, bool skip_special_tokens) const override;
  std::string token_bytes(int32_t token) const override;
  std::unique_ptr<StreamingDecoder> streaming_decoder(bool skip_special_tokens) const override;
  std::string render_chat(const ChatRequest& request) const override;
  std::unique_ptr<OutputParser> output_parser(ThinkingMode mode, bool tools) const override;

  // Tokens that decode to lowercase ASCII words (optionally with a leading
  // space): what the fake model writes freely when it runs with this tokenizer.
  std::vector<int32_t> plain_word_tokens() const;

 private:
  text::Tokenizer tokenizer_;
  int32_t bos_ = 0;
  int32_t eos_ = 1;
  bool add_bos_ = false;  // tokenizer_config.json's add_bos_token (DeepSeek-V4: false)
  text::EncodingRevision revision_ = text::EncodingRevision::kV4;  // from the model's encoding/encoding_dsv4.py
};

}  // namespace fp4serve::server
