// The GPT-2 byte-level alphabet: every byte 0..255 is written as one printable
// code point (printable Latin-1 bytes as themselves, the others shifted to
// U+0100..U+0143), so a byte-level BPE vocabulary is a set of ordinary strings.
// Our BPE works on raw bytes and converts only at the tokenizer.json boundary.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fp4serve::text {

// The code point that stands for `byte` in byte-level strings.
char32_t byte_to_code_point(uint8_t byte);

// The byte a byte-level code point stands for, or nullopt if `cp` is not in the alphabet.
std::optional<uint8_t> code_point_to_byte(char32_t cp);

// Byte-level string (UTF-8) -> raw bytes, or nullopt if some character is not
// in the alphabet (or the string is not UTF-8).
std::optional<std::string> byte_level_to_bytes(std::string_view byte_level);

// Raw bytes -> byte-level string (UTF-8).
std::string bytes_to_byte_level(std::string_view bytes);

}  // namespace fp4serve::text
