// The pre-tokenizer of a byte-level BPE tokenizer.json: a Sequence of Split
// steps (a regex or literal pattern, a delimiter behavior, optional invert)
// ending in ByteLevel (optional prefix space and GPT-2 regex). It cuts the text
// between added tokens into the words that BPE merges independently.
#pragma once

#include <deque>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "text/pcre2_regex.h"

namespace fp4serve::text {

// What a Split step does with the pieces its pattern matches (Hugging Face names).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

class PreTokenizer {
 public:
  // Reads the "pre_tokenizer" value of tokenizer.json; `origin` prefixes errors.
  // Accepts Sequence, Split and ByteLevel; byte-level BPE needs exactly one
  // ByteLevel step, and it must come last.
  static PreTokenizer from_json(const nlohmann::json& config, const std::string& origin);

  // Appends the words of `segment` (valid UTF-8) to `words`. A word either views
  // `segment` or a string kept in `storage` (when a prefix space was added).
  void split(std::string_view segment, std::vector<std::string_view>& words, std::deque<std::string>& storage) const;

 private:
  struct SplitStep {
    std::unique_ptr<Pcre2Regex> regex;  // null: `literal` is the pattern
    std::string literal;
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;
  };
  void apply_split(const SplitStep& step, std::string_view piece, std::vector<std::string_view>& out) const;

  std::vector<SplitStep> splits_;
  bool add_prefix_space_ = false;
  std::unique_ptr<SplitStep> byte_level_split_;  // GPT-2 regex, Isolated; set when ByteLevel.use_regex
};

}  // namespace fp4serve::text
