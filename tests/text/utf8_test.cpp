// UTF-8 handling against the Unicode Standard: well-formedness checked
// exhaustively against a naive encoder of every scalar value (Table 3-7),
// U+FFFD substitution against the standard's own example (Table 3-8).
#include "text/utf8.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "base/error.h"
#include "text/byte_level.h"

namespace fp4serve::text {
namespace {

// The definition: the shortest encoding of a scalar value, bit by bit.
std::string naive_encode(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// The definition read backwards: the bits of one character's bytes, valid only
// if re-encoding gives the same bytes (no overlong forms) and it is a scalar value.
bool naive_is_one_character(const std::string& s) {
  const auto lead = static_cast<uint8_t>(s[0]);
  const size_t length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 0;
  if (length != s.size()) return false;
  uint32_t cp = length == 1 ? lead : lead & (0xFF >> (length + 1));
  for (size_t i = 1; i < length; ++i) {
    if ((static_cast<uint8_t>(s[i]) >> 6) != 0x2) return false;
    cp = (cp << 6) | (static_cast<uint8_t>(s[i]) & 0x3F);
  }
  return cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF) && naive_encode(cp) == s;
}

TEST(Utf8, MultiByteSequencesAreValidExactlyWhenTheyEncodeAScalarValue) {
  auto valid = [](const std::string& s) { return naive_is_one_character(s) ? 1u : 0u; };
  size_t checked = 0;
  // Every 2-byte string with a non-ASCII lead, every 3-byte string with lead
  // E0..EF, every 4-byte string with lead F0..F4 and continuation-range tails.
  for (int a = 0x80; a < 0x100; ++a)
    for (int b = 0; b < 0x100; ++b, ++checked) {
      const std::string s{static_cast<char>(a), static_cast<char>(b)};
      ASSERT_EQ(find_invalid_utf8(s) == std::string::npos, valid(s) == 1) << std::hex << a << " " << b;
    }
  for (int a = 0xE0; a <= 0xEF; ++a)
    for (int b = 0; b < 0x100; ++b)
      for (int c = 0; c < 0x100; ++c, ++checked) {
        const std::string s{static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)};
        ASSERT_EQ(find_invalid_utf8(s) == std::string::npos, valid(s) == 1) << std::hex << a << " " << b << " " << c;
      }
  for (int a = 0xF0; a <= 0xF4; ++a)
    for (int b = 0x70; b < 0xD0; ++b)
      for (int c = 0x70; c < 0xD0; ++c)
        for (int d = 0x70; d < 0xD0; ++d, ++checked) {
          const std::string s{static_cast<char>(a), static_cast<char>(b), static_cast<char>(c), static_cast<char>(d)};
          ASSERT_EQ(find_invalid_utf8(s) == std::string::npos, valid(s) == 1) << std::hex << a << " " << b;
        }
  EXPECT_GT(checked, 2000000u);
}

TEST(Utf8, FirstInvalidByteTable) {
  struct Case {
    std::string bytes;
    size_t first_bad;
  };
  const size_t ok = std::string_view::npos;
  const Case cases[] = {
      {"plain", ok},
      {"\xC3\xA9", ok},                 // é
      {"\xE2\x9C\x93", ok},             // ✓
      {"\xF0\x9F\x98\x80", ok},         // 😀
      {"\xF4\x8F\xBF\xBF", ok},         // U+10FFFF
      {"a\x80", 1},                     // lone continuation byte
      {"\xC0\x80", 0},                  // overlong NUL
      {"\xE0\x80\xAF", 0},              // overlong '/'
      {"\xED\xA0\x80", 0},              // surrogate U+D800
      {"\xF4\x90\x80\x80", 0},          // U+110000
      {"ab\xC3", 2},                    // truncated
      {"\xE2\x9C", 0},                  // truncated
      {"\xFF", 0},
      {"x\xC3\x28", 1},                 // bad continuation
  };
  for (const auto& c : cases) EXPECT_EQ(find_invalid_utf8(c.bytes), c.first_bad) << c.bytes;
}

TEST(Utf8, DecodesEveryScalarValue) {
  for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    const std::string s = naive_encode(cp);
    const Utf8Unit unit = next_utf8_unit(s);
    ASSERT_EQ(unit.kind, Utf8Unit::Kind::kCharacter);
    ASSERT_EQ(unit.code_point, cp);
    ASSERT_EQ(unit.length, s.size());
    std::string appended;
    append_utf8(appended, cp);
    ASSERT_EQ(appended, s);
  }
}

TEST(Utf8, ReplacementFollowsTheStandardsExample) {
  // The Unicode Standard, Table 3-8: 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64.
  EXPECT_EQ(utf8_lossy("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd");
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98"), "\uFFFD");  // an incomplete tail is one replacement
  EXPECT_EQ(utf8_lossy("ok"), "ok");
}

TEST(Utf8, EmittablePrefixHoldsBackOnlyAnIncompleteCharacter) {
  EXPECT_EQ(utf8_emittable_prefix("abc\xE4\xBD"), 3u);
  EXPECT_EQ(utf8_emittable_prefix("abc\xE4\xBD\xA0"), 6u);
  EXPECT_EQ(utf8_emittable_prefix("\xF0\x9F\x98"), 0u);
  EXPECT_EQ(utf8_emittable_prefix("a\x80"), 2u);      // ill-formed now and forever
  EXPECT_EQ(utf8_emittable_prefix("\xE0\x80"), 2u);   // E0 needs A0..BF next
  EXPECT_EQ(utf8_emittable_prefix("\xC3\xE0\xA0"), 1u);
  EXPECT_EQ(utf8_emittable_prefix(""), 0u);
}

TEST(Utf8, CheckNamesTheOffset) {
  try {
    check_utf8("abc\xFF", "prompt");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "prompt is not valid UTF-8: byte 0xFF at offset 3 starts an ill-formed or truncated sequence");
  }
}

TEST(ByteLevel, AlphabetMatchesGpt2) {
  // GPT-2's bytes_to_unicode: printable Latin-1 stays, the rest shifts to U+0100.. in byte order.
  EXPECT_EQ(byte_to_code_point(' '), U'\u0120');   // "Ġ"
  EXPECT_EQ(byte_to_code_point('\n'), U'\u010A');  // "Ċ"
  EXPECT_EQ(byte_to_code_point(0x00), U'\u0100');
  EXPECT_EQ(byte_to_code_point(0x7F), U'\u0121');
  EXPECT_EQ(byte_to_code_point(0xAD), U'\u0143');
  EXPECT_EQ(byte_to_code_point('!'), U'!');
  EXPECT_EQ(byte_to_code_point(0xA1), U'\u00A1');
  EXPECT_EQ(byte_to_code_point(0xFF), U'\u00FF');
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) {
    const char32_t cp = byte_to_code_point(static_cast<uint8_t>(b));
    seen.insert(cp);
    ASSERT_EQ(code_point_to_byte(cp), b);
  }
  EXPECT_EQ(seen.size(), 256u);
  EXPECT_EQ(bytes_to_byte_level(" hi\n"), "ĠhiĊ");
  EXPECT_EQ(byte_level_to_bytes("ĠhiĊ"), " hi\n");
  EXPECT_EQ(byte_level_to_bytes("<｜User｜>"), std::nullopt);
}

}  // namespace
}  // namespace fp4serve::text
