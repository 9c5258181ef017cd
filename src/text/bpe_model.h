// The BPE model of a byte-level tokenizer.json: the vocabulary, the ranked
// merges, and the merge loop that turns one pre-tokenized word (raw bytes)
// into token ids, lowest merge rank first (leftmost among equal ranks), as
// Hugging Face `tokenizers` does. Results are cached per word.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace fp4serve::text {

class BpeModel {
 public:
  // Reads the "model" value of tokenizer.json (type BPE; merges as "a b"
  // strings or [a, b] arrays). `origin` prefixes errors.
  static BpeModel from_json(const nlohmann::json& model, const std::string& origin);

  BpeModel(BpeModel&&) noexcept;
  BpeModel& operator=(BpeModel&&) noexcept;
  ~BpeModel();

  // Appends the ids of one word (raw bytes, not empty). Thread-safe.
  void encode_word(std::string_view word, std::vector<uint32_t>& ids) const;

  // The vocabulary, id -> token as written in tokenizer.json (byte-level form).
  // Ids without a token are empty strings.
  const std::vector<std::string>& tokens() const { return tokens_; }
  std::optional<uint32_t> token_to_id(std::string_view token) const;
  size_t merge_count() const;

 private:
  BpeModel();
  struct MergeTable;
  struct WordCache;

  std::vector<std::string> tokens_;
  std::unordered_map<std::string, uint32_t> vocab_;
  uint32_t byte_ids_[256] = {};
  std::unique_ptr<MergeTable> merges_;
  std::unique_ptr<WordCache> cache_;
  bool ignore_merges_ = false;
  std::unordered_map<std::string, uint32_t> words_in_vocab_;  // raw bytes -> id, for ignore_merges
};

}  // namespace fp4serve::text
