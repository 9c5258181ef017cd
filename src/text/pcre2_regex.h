// A compiled PCRE2 pattern (UTF + UCP, JIT when available) with the match
// iteration Hugging Face `tokenizers` uses for its Oniguruma regexes:
// non-overlapping matches, left to right, and an empty match is not accepted
// right where the previous match ended (the search moves one character on).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

struct pcre2_real_code_8;

namespace fp4serve::text {

class Pcre2Regex {
 public:
  // `origin` names the pattern in errors ("tokenizer.json: pre_tokenizer[2]").
  Pcre2Regex(std::string_view pattern, std::string origin);
  ~Pcre2Regex();
  Pcre2Regex(const Pcre2Regex&) = delete;
  Pcre2Regex& operator=(const Pcre2Regex&) = delete;

  // Calls on_match(begin, end) for every match in `subject`, which must be valid
  // UTF-8 (it is not checked again). Safe to call from several threads at once.
  void for_each_match(std::string_view subject, const std::function<void(size_t, size_t)>& on_match) const;

  // True if the pattern matches anywhere in `subject`.
  bool search(std::string_view subject) const;

  const std::string& origin() const { return origin_; }

 private:
  bool match(std::string_view subject, size_t offset, size_t* begin, size_t* end) const;

  pcre2_real_code_8* code_ = nullptr;
  bool jit_ = false;
  std::string origin_;
};

// Rewrites Oniguruma/Rust-regex syntax that PCRE2 reads differently into the
// PCRE2 spelling of the same thing. Today: \s and \S, which in PCRE2 10.42 UCP
// mode also match U+180E and which Oniguruma limits to the Unicode White_Space
// property.
std::string pcre2_pattern_from_oniguruma(std::string_view pattern);

}  // namespace fp4serve::text
