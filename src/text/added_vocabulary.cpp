#include "text/added_vocabulary.h"

#include <algorithm>
#include <bitset>

#include "text/utf8.h"

namespace fp4serve::text {

// A byte trie answering "the longest token starting here".
class AddedVocabulary::Trie {
 public:
  void insert(std::string_view content, uint32_t token_index) {
    uint32_t node = 0;
    for (char c : content) {
      const auto byte = static_cast<uint8_t>(c);
      auto& edges = nodes_[node].edges;
      auto it = std::lower_bound(edges.begin(), edges.end(), byte, [](const auto& e, uint8_t b) { return e.first < b; });
      if (it == edges.end() || it->first != byte) {
        it = edges.insert(it, {byte, static_cast<uint32_t>(nodes_.size())});
        nodes_.emplace_back();
      }
      node = it->second;
    }
    nodes_[node].token = static_cast<int64_t>(token_index);
    first_bytes_.set(static_cast<uint8_t>(content[0]));
  }

  bool empty() const { return nodes_.size() == 1; }
  bool may_start(uint8_t byte) const { return first_bytes_.test(byte); }

  // Longest token at the front of `text`: (token index, length) or (-1, 0).
  std::pair<int64_t, size_t> longest_prefix(std::string_view text) const {
    std::pair<int64_t, size_t> best{-1, 0};
    uint32_t node = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      const auto byte = static_cast<uint8_t>(text[i]);
      const auto& edges = nodes_[node].edges;
      const auto it = std::lower_bound(edges.begin(), edges.end(), byte, [](const auto& e, uint8_t b) { return e.first < b; });
      if (it == edges.end() || it->first != byte) break;
      node = it->second;
      if (nodes_[node].token >= 0) best = {nodes_[node].token, i + 1};
    }
    return best;
  }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, uint32_t>> edges;
    int64_t token = -1;
  };
  std::vector<Node> nodes_{Node{}};
  std::bitset<256> first_bytes_;
};

namespace {

// Unicode White_Space, which lstrip/rstrip absorb (Rust's \s).
bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Start of the last character of `text` (valid UTF-8, not empty).
size_t last_character_start(std::string_view text) {
  size_t i = text.size() - 1;
  while (i > 0 && (static_cast<uint8_t>(text[i]) & 0xC0) == 0x80) --i;
  return i;
}

}  // namespace

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens)
    : tokens_(std::move(tokens)), raw_trie_(std::make_unique<Trie>()), normalized_trie_(std::make_unique<Trie>()) {
  bool any_single_word = false;
  for (size_t i = 0; i < tokens_.size(); ++i) {
    if (tokens_[i].content.empty()) continue;
    (tokens_[i].normalized ? *normalized_trie_ : *raw_trie_).insert(tokens_[i].content, static_cast<uint32_t>(i));
    any_single_word = any_single_word || tokens_[i].single_word;
  }
  if (any_single_word) {
    // Rust regex's Unicode \w, which Hugging Face uses for single_word.
    word_character_ = std::make_unique<Pcre2Regex>(R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}])",
                                                   "added token word boundary");
  }
}

AddedVocabulary::AddedVocabulary(AddedVocabulary&&) noexcept = default;
AddedVocabulary& AddedVocabulary::operator=(AddedVocabulary&&) noexcept = default;
AddedVocabulary::~AddedVocabulary() = default;

void AddedVocabulary::split_with(const Trie& trie, std::string_view text, std::vector<TextSegment>& out) const {
  size_t emitted = 0;  // text before this offset is already in `out`
  size_t i = 0;
  while (i < text.size()) {
    if (!trie.may_start(static_cast<uint8_t>(text[i]))) {
      ++i;
      continue;
    }
    const auto [index, length] = trie.longest_prefix(text.substr(i));
    if (index < 0) {
      ++i;
      continue;
    }
    const AddedToken& token = tokens_[index];
    size_t start = i, stop = i + length;
    i = stop;  // matches never overlap, even when this one is then rejected
    if (token.single_word) {
      // Only whole words: no word character may touch the match on either side.
      const size_t before = start > 0 ? last_character_start(text.substr(0, start)) : 0;
      const bool word_before = start > 0 && word_character_->search(text.substr(before, start - before));
      const bool word_after =
          stop < text.size() && word_character_->search(text.substr(stop, next_utf8_unit(text.substr(stop)).length));
      if (word_before || word_after) continue;
    }
    if (token.lstrip) {
      while (start > emitted) {
        const size_t c = last_character_start(text.substr(0, start));
        if (!is_white_space(next_utf8_unit(text.substr(c)).code_point)) break;
        start = c;
      }
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        const Utf8Unit unit = next_utf8_unit(text.substr(stop));
        if (!is_white_space(unit.code_point)) break;
        stop += unit.length;
      }
      i = stop;
    }
    if (start > emitted) out.push_back({text.substr(emitted, start - emitted), -1});
    out.push_back({text.substr(start, stop - start), static_cast<int64_t>(token.id)});
    emitted = stop;
  }
  if (emitted < text.size()) out.push_back({text.substr(emitted), -1});
}

void AddedVocabulary::split(std::string_view text, std::vector<TextSegment>& out) const {
  if (normalized_trie_->empty()) {
    split_with(*raw_trie_, text, out);
    return;
  }
  std::vector<TextSegment> first;
  split_with(*raw_trie_, text, first);
  for (const TextSegment& segment : first) {
    if (segment.token_id >= 0) {
      out.push_back(segment);
    } else {
      split_with(*normalized_trie_, segment.text, out);
    }
  }
}

}  // namespace fp4serve::text
