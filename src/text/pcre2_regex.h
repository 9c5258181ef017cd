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

// Rewrites an Oniguruma pattern (what tokenizer.json holds) into a PCRE2
// pattern that matches the same strings: \s is the White_Space property (PCRE2
// UCP would also match U+180E), \w and \d follow Oniguruma's definitions,
// \uHHHH becomes \x{HHHH}, and every general category gains the code points
// Unicode assigned between PCRE2's 14.0 and Oniguruma's 16.0 (unicode_additions.h).
std::string pcre2_pattern_from_oniguruma(std::string_view pattern);

}  // namespace fp4serve::text
