#include "server/utf8_text.h"

namespace fp4serve::server {

size_t first_invalid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    size_t length;
    uint32_t min_code;
    if (b < 0x80) { ++i; continue; }
    if ((b & 0xe0) == 0xc0) { length = 2; min_code = 0x80; }
    else if ((b & 0xf0) == 0xe0) { length = 3; min_code = 0x800; }
    else if ((b & 0xf8) == 0xf0) { length = 4; min_code = 0x10000; }
    else return i;
    if (i + length > s.size()) return i;
    uint32_t code = b & (0x7f >> length);
    for (size_t k = 1; k < length; ++k) {
      auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xc0) != 0x80) return i;
      code = (code << 6) | (c & 0x3f);
    }
    if (code < min_code || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return i;
    i += length;
  }
  return std::string_view::npos;
}

std::string replace_invalid_utf8(std::string_view rest) {
  std::string out;
  while (!rest.empty()) {
    size_t bad = first_invalid_utf8(rest);
    if (bad == std::string_view::npos) {
      out += rest;
      break;
    }
    out += rest.substr(0, bad);
    out += "\xEF\xBF\xBD";
    rest.remove_prefix(bad + 1);
  }
  return out;
}

}  // namespace fp4serve::server
