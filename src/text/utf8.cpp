#include "text/utf8.h"

#include "base/error.h"

namespace fp4serve::text {

namespace {

// Allowed range of the second byte for each lead byte (Unicode Table 3-7);
// later continuation bytes are always 0x80..0xBF.
struct LeadInfo {
  int length;            // 0: not a lead byte
  unsigned char lo, hi;  // second-byte range
};

LeadInfo lead_info(unsigned char b) {
  if (b < 0x80) return {1, 0, 0};
  if (b < 0xC2) return {0, 0, 0};
  if (b < 0xE0) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};  // excludes UTF-16 surrogates
  if (b < 0xF0) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};  // excludes overlong forms
  if (b < 0xF4) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};  // nothing above U+10FFFF
  return {0, 0, 0};
}

}  // namespace

Utf8Unit next_utf8_unit(std::string_view bytes) {
  const auto b0 = static_cast<unsigned char>(bytes[0]);
  const LeadInfo info = lead_info(b0);
  if (info.length == 0) return {Utf8Unit::Kind::kIllFormed, 0, 1};
  if (info.length == 1) return {Utf8Unit::Kind::kCharacter, b0, 1};
  char32_t cp = b0 & (0x7F >> info.length);
  for (int i = 1; i < info.length; ++i) {
    if (static_cast<size_t>(i) >= bytes.size()) return {Utf8Unit::Kind::kIncomplete, 0, static_cast<size_t>(i)};
    const auto b = static_cast<unsigned char>(bytes[i]);
    const unsigned char lo = i == 1 ? info.lo : 0x80;
    const unsigned char hi = i == 1 ? info.hi : 0xBF;
    if (b < lo || b > hi) return {Utf8Unit::Kind::kIllFormed, 0, static_cast<size_t>(i)};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {Utf8Unit::Kind::kCharacter, cp, static_cast<size_t>(info.length)};
}

size_t find_invalid_utf8(std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    if (b < 0x80) {  // ASCII fast path
      ++i;
      continue;
    }
    const Utf8Unit unit = next_utf8_unit(bytes.substr(i));
    if (unit.kind != Utf8Unit::Kind::kCharacter) return i;
    i += unit.length;
  }
  return std::string_view::npos;
}

void check_utf8(std::string_view bytes, std::string_view what) {
  const size_t bad = find_invalid_utf8(bytes);
  if (bad != std::string_view::npos) {
    fail("{} is not valid UTF-8: byte 0x{:02X} at offset {} starts an ill-formed or truncated sequence", what,
         static_cast<unsigned char>(bytes[bad]), bad);
  }
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const Utf8Unit unit = next_utf8_unit(bytes.substr(i));
    if (unit.kind == Utf8Unit::Kind::kCharacter) {
      out.append(bytes.substr(i, unit.length));
    } else {
      out.append(kReplacementCharacter);
    }
    i += unit.length;
  }
  return out;
}

size_t utf8_emittable_prefix(std::string_view bytes) {
  // Only the last three bytes can belong to an incomplete character.
  const size_t scan_from = bytes.size() > 3 ? bytes.size() - 3 : 0;
  for (size_t start = scan_from; start < bytes.size(); ++start) {
    const auto b = static_cast<unsigned char>(bytes[start]);
    if ((b & 0xC0) == 0x80) continue;  // a continuation byte cannot start a unit
    const Utf8Unit unit = next_utf8_unit(bytes.substr(start));
    if (unit.kind == Utf8Unit::Kind::kIncomplete && start + unit.length == bytes.size()) return start;
  }
  return bytes.size();
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace fp4serve::text
