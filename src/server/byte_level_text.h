// A stand-in text layer for tests of the server (and `serve --fake-model`
// without a tokenizer): one token per byte plus six special tokens, a chat
// format shaped like DeepSeek-V4's (BOS, user/assistant markers, <think>), and
// an output parser that splits reasoning at </think>. It has no tool-call
// syntax; tool calls need the real DeepSeek text layer.
#pragma once

#include "server/serving_text.h"

namespace fp4serve::server {

class ByteLevelText : public ServingText {
 public:
  // Special tokens first, then byte b as id kFirstByteToken + b.
  static constexpr int32_t kBos = 0, kEos = 1, kUser = 2, kAssistant = 3, kThinkOpen = 4, kThinkClose = 5;
  static constexpr int32_t kFirstByteToken = 6;
  static constexpr int kVocabSize = kFirstByteToken + 256;

  int vocab_size() const override { return kVocabSize; }
  int32_t eos_token() const override { return kEos; }
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const override;
  std::string decode(std::span<const int32_t> tokens, bool skip_special_tokens) const override;
  std::string token_bytes(int32_t token) const override;
  std::unique_ptr<StreamingDecoder> streaming_decoder(bool skip_special_tokens) const override;
  std::string render_chat(const ChatRequest& request) const override;
  std::unique_ptr<OutputParser> output_parser(ThinkingMode mode, bool tools) const override;

  // Tokens for lowercase letters and space: what the fake model writes freely.
  static std::vector<int32_t> word_tokens();
};

}  // namespace fp4serve::server
