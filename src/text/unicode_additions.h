// Code points that Unicode 15.0, 15.1 and 16.0 added to each general category.
// PCRE2 10.42 knows Unicode 14.0; the Oniguruma in Hugging Face `tokenizers`
// 0.23 knows 16.0. The regex translation (pcre2_regex.cpp) adds these ranges
// wherever a tokenizer pattern names a category, so both agree on characters
// assigned since 14.0. Generated data: tests/text/unicode/generate_unicode_additions.js.
#pragma once

#include <span>
#include <string_view>

namespace fp4serve::text {

struct CodePointRange {
  char32_t first, last;  // inclusive
};

struct CategoryAdditions {
  std::string_view category;  // "L", "Lo", "N", ..., "White_Space"
  std::span<const CodePointRange> ranges;
};

std::span<const CategoryAdditions> unicode16_category_additions();

// Categories that also lost code points between 14.0 and 16.0: adding ranges
// cannot make PCRE2 agree on them, so patterns using them are refused.
std::span<const std::string_view> unicode16_categories_with_removals();

}  // namespace fp4serve::text
