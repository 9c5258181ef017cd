#include "text/byte_level.h"

#include <array>

#include "text/utf8.h"

namespace fp4serve::text {

namespace {

struct ByteLevelAlphabet {
  std::array<char32_t, 256> byte_to_cp{};
  std::array<int16_t, 0x144> cp_to_byte{};  // -1: not in the alphabet

  ByteLevelAlphabet() {
    cp_to_byte.fill(-1);
    auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
    char32_t next_shifted = 0x100;
    for (int b = 0; b < 256; ++b) {
      byte_to_cp[b] = printable(b) ? static_cast<char32_t>(b) : next_shifted++;
      cp_to_byte[byte_to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteLevelAlphabet& alphabet() {
  static const ByteLevelAlphabet instance;
  return instance;
}

}  // namespace

char32_t byte_to_code_point(uint8_t byte) { return alphabet().byte_to_cp[byte]; }

std::optional<uint8_t> code_point_to_byte(char32_t cp) {
  if (cp >= alphabet().cp_to_byte.size() || alphabet().cp_to_byte[cp] < 0) return std::nullopt;
  return static_cast<uint8_t>(alphabet().cp_to_byte[cp]);
}

std::optional<std::string> byte_level_to_bytes(std::string_view byte_level) {
  std::string out;
  out.reserve(byte_level.size());
  size_t i = 0;
  while (i < byte_level.size()) {
    const Utf8Unit unit = next_utf8_unit(byte_level.substr(i));
    if (unit.kind != Utf8Unit::Kind::kCharacter) return std::nullopt;
    const auto byte = code_point_to_byte(unit.code_point);
    if (!byte) return std::nullopt;
    out += static_cast<char>(*byte);
    i += unit.length;
  }
  return out;
}

std::string bytes_to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(out, byte_to_code_point(static_cast<uint8_t>(c)));
  return out;
}

}  // namespace fp4serve::text
