// Added tokens of a tokenizer.json (special tokens such as <｜User｜>, and
// others): found in the text before pre-tokenization, leftmost-longest, first
// those matched on the raw text (normalized: false), then the others (with no
// normalizer the text is the same, but the two passes can cut differently).
// Honors the single_word, lstrip and rstrip flags.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "text/pcre2_regex.h"

namespace fp4serve::text {

struct AddedToken {
  std::string content;
  uint32_t id = 0;
  bool special = false;
  bool normalized = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
};

// A piece of the input: either an added token (id >= 0) or plain text (id < 0).
struct TextSegment {
  std::string_view text;
  int64_t token_id;
};

class AddedVocabulary {
 public:
  explicit AddedVocabulary(std::vector<AddedToken> tokens);
  AddedVocabulary(AddedVocabulary&&) noexcept;
  AddedVocabulary& operator=(AddedVocabulary&&) noexcept;
  ~AddedVocabulary();

  // Cuts `text` into added tokens and the plain text between them.
  void split(std::string_view text, std::vector<TextSegment>& out) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  class Trie;
  void split_with(const Trie& trie, std::string_view text, std::vector<TextSegment>& out) const;

  std::vector<AddedToken> tokens_;
  std::unique_ptr<Trie> raw_trie_;         // tokens with normalized: false
  std::unique_ptr<Trie> normalized_trie_;  // tokens with normalized: true
  std::unique_ptr<Pcre2Regex> word_character_;
};

}  // namespace fp4serve::text
