// Text <-> token ids for the server and the CLI: a byte-level BPE tokenizer
// read from a Hugging Face tokenizer.json, matching the `tokenizers` library id
// for id (checked against it on an adversarial corpus, tests/text/).
//
//   Tokenizer tok = Tokenizer::from_file("tokenizer.json");
//   std::vector<uint32_t> ids = tok.encode(prompt);   // no BOS added: the chat renderer writes it
//   std::string text = tok.decode(ids);
//
//   IncrementalDecoder stream(tok);                     // one per generated sequence
//   for (uint32_t id : generated) send(stream.push(id)); // whole UTF-8 characters only
//   send(stream.finish());
//
// Added tokens (<｜User｜>, <think>, ...) written in the text are matched as
// single ids, as DeepSeek's reference pipeline does: a rendered prompt is
// tokenized as one string. Encode rejects text that is not valid UTF-8 with
// an fp4serve::Error (the server turns it into HTTP 400). A Tokenizer is
// immutable after loading; every method is safe to call from many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace fp4serve::text {

class AddedVocabulary;
class BpeModel;
class PreTokenizer;

class Tokenizer {
 public:
  static Tokenizer from_file(const std::string& path);
  // `json` is the content of a tokenizer.json; `origin` names it in errors.
  static Tokenizer from_json(std::string_view json, const std::string& origin);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Token ids of `text`, without any special token added.
  std::vector<uint32_t> encode(std::string_view text) const;
  void encode(std::string_view text, std::vector<uint32_t>& ids) const;  // appends

  // Text of `ids`; bytes that are not UTF-8 become U+FFFD, as in `tokenizers`.
  // Throws for an id outside the vocabulary.
  std::string decode(std::span<const uint32_t> ids, bool skip_special_tokens = false) const;

  // The raw bytes one token stands for (possibly part of a UTF-8 character).
  const std::string& token_bytes(uint32_t id) const;
  // The token as tokenizer.json writes it (byte-level form, or an added token's content).
  const std::string& token_string(uint32_t id) const;
  // Id of an added token's content or of a vocabulary entry (byte-level form).
  std::optional<uint32_t> token_to_id(std::string_view token) const;
  bool is_special(uint32_t id) const;
  // One past the largest id (DeepSeek-V4: 129280).
  uint32_t vocab_size() const { return static_cast<uint32_t>(token_bytes_.size()); }

 private:
  Tokenizer();
  void check_id(uint32_t id) const;

  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<AddedVocabulary> added_;
  std::vector<std::string> token_strings_;
  std::vector<std::string> token_bytes_;
  std::vector<bool> special_;
};

// Detokenizes a stream of ids into text that never ends inside a UTF-8
// character: bytes of an incomplete character are held back until the tokens
// that complete it arrive; bytes that can no longer form a character become
// U+FFFD at once. The pieces concatenate to tokenizer.decode(all ids).
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false);

  // Text completed by this token; often empty mid-character.
  std::string push(uint32_t id);
  // At the end of the stream: an incomplete trailing character as U+FFFD.
  std::string finish();
  // Bytes held back now (0..3).
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
  std::string pending_;
};

}  // namespace fp4serve::text
