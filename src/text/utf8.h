// UTF-8 as the tokenizer and the streaming detokenizer need it: strict
// validation (the server rejects malformed prompts), lossy conversion with
// U+FFFD per maximal ill-formed subpart (the convention of Rust's
// String::from_utf8_lossy, which Hugging Face `tokenizers` uses to decode), and
// a streaming split that holds back an incomplete trailing character.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace fp4serve::text {

inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

// What the bytes at the front of a buffer are.
struct Utf8Unit {
  enum class Kind { kCharacter, kIllFormed, kIncomplete } kind;
  char32_t code_point;  // valid for kCharacter
  size_t length;        // bytes: the character, the maximal ill-formed subpart, or the incomplete prefix
};

// Classifies the unit at the front of `bytes` (which must not be empty).
// kIncomplete means the bytes are a proper prefix of a well-formed character and
// more input could complete it.
Utf8Unit next_utf8_unit(std::string_view bytes);

// Offset of the first byte that is not part of well-formed UTF-8, or npos if
// the whole string is well-formed (an incomplete final character is not).
size_t find_invalid_utf8(std::string_view bytes);

// Throws fp4serve::Error naming `what` and the byte offset when `bytes` is not UTF-8.
void check_utf8(std::string_view bytes, std::string_view what);

// Replaces every maximal ill-formed subpart (and an incomplete tail) by U+FFFD.
std::string utf8_lossy(std::string_view bytes);

// Length of the longest prefix of `bytes` that can be emitted now: complete
// characters and ill-formed subparts (which no later byte can repair). What
// remains is an incomplete character that the next bytes may complete.
size_t utf8_emittable_prefix(std::string_view bytes);

void append_utf8(std::string& out, char32_t code_point);

}  // namespace fp4serve::text
