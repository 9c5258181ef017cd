// FP8 E4M3FN: all 256 codes, hand-checked vectors, every tie, saturating vs non-saturating.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>

#include "format_references.h"
#include "formats/number_formats.h"

namespace fp4serve {
namespace {

using testing::e4m3_reference;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Reference encode: brute-force nearest (ties to even code) against the definition's values;
// past 448 (nearest is the virtual 480) the mode decides.
uint8_t reference_encode(float x, E4M3Overflow overflow) {
  const bool saturate = overflow == E4M3Overflow::kSaturate;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  if (std::isnan(x)) return saturate ? 0x7F : (sign | 0x7F);
  const int code = testing::nearest_code(std::fabs(static_cast<double>(x)), testing::e4m3_magnitudes_with_overflow());
  if (code == 0x7F) return sign | (saturate ? 0x7E : 0x7F);
  return static_cast<uint8_t>(sign | code);
}

TEST(E4M3, DecodesEveryCodeAsTheDefinition) {
  for (int code = 0; code < 256; ++code) {
    const double expected = e4m3_reference(code);
    const float v = decode_e4m3(code);
    if (std::isnan(expected)) {
      EXPECT_TRUE(std::isnan(v)) << code;
    } else {
      EXPECT_EQ(static_cast<double>(v), expected) << code;
      EXPECT_EQ(std::signbit(v), code >= 0x80) << code;
    }
  }
}

TEST(E4M3, Spec62Decodes) {
  struct Case {
    uint8_t code;
    float value;
  };
  for (const Case& c : {Case{0x00, 0.0f}, Case{0x01, 0.001953125f}, Case{0x07, 0.013671875f}, Case{0x08, 0.015625f},
                        Case{0x38, 1.0f}, Case{0x3F, 1.875f}, Case{0x40, 2.0f}, Case{0x42, 2.5f}, Case{0x77, 240.0f},
                        Case{0x78, 256.0f}, Case{0x79, 288.0f}, Case{0x7E, 448.0f}, Case{0x80, -0.0f},
                        Case{0xB8, -1.0f}, Case{0xC0, -2.0f}, Case{0xFE, -448.0f}}) {
    EXPECT_EQ(decode_e4m3(c.code), c.value) << std::hex << int(c.code);
    EXPECT_EQ(std::signbit(decode_e4m3(c.code)), std::signbit(c.value));
  }
  EXPECT_TRUE(std::isnan(decode_e4m3(0x7F)));
  EXPECT_TRUE(std::isnan(decode_e4m3(0xFF)));
}

TEST(E4M3, Spec62Encodes) {
  struct Case {
    float x;
    uint8_t torch, satfinite;
  };
  for (const Case& c :
       {Case{0x1p-10f, 0x00, 0x00}, Case{1.5f * 0x1p-9f, 0x02, 0x02}, Case{2.5f * 0x1p-9f, 0x02, 0x02},
        Case{0.0176f, 0x09, 0x09}, Case{1.0625f, 0x38, 0x38}, Case{1.1875f, 0x3A, 0x3A}, Case{1.3f, 0x3A, 0x3A},
        Case{300.0f, 0x79, 0x79}, Case{464.0f, 0x7E, 0x7E}, Case{465.0f, 0x7F, 0x7E}, Case{480.0f, 0x7F, 0x7E},
        Case{1e6f, 0x7F, 0x7E}, Case{kInf, 0x7F, 0x7E}, Case{kNaN, 0x7F, 0x7F}}) {
    EXPECT_EQ(encode_e4m3(c.x, E4M3Overflow::kToNaN), c.torch) << c.x;
    EXPECT_EQ(encode_e4m3(c.x, E4M3Overflow::kSaturate), c.satfinite) << c.x;
  }
}

TEST(E4M3, SaturatingAndNonSaturatingDifferOnlyPastTheMidpointAbove448) {
  for (float sign : {1.0f, -1.0f}) {
    const uint8_t s = sign < 0 ? 0x80 : 0x00;
    EXPECT_EQ(encode_e4m3(sign * 448.0f, E4M3Overflow::kToNaN), s | 0x7E);
    EXPECT_EQ(encode_e4m3(sign * 464.0f, E4M3Overflow::kToNaN), s | 0x7E);  // tie to even 448
    const float above = sign * testing::ulp_above(464.0f);
    EXPECT_EQ(encode_e4m3(above, E4M3Overflow::kToNaN), s | 0x7F);
    EXPECT_EQ(encode_e4m3(above, E4M3Overflow::kSaturate), s | 0x7E);
    EXPECT_EQ(encode_e4m3(sign * kInf, E4M3Overflow::kToNaN), s | 0x7F);
    EXPECT_EQ(encode_e4m3(sign * kInf, E4M3Overflow::kSaturate), s | 0x7E);
    EXPECT_EQ(encode_e4m3(sign * std::numeric_limits<float>::max(), E4M3Overflow::kSaturate), s | 0x7E);
  }
  EXPECT_EQ(encode_e4m3(-kNaN, E4M3Overflow::kToNaN), 0xFF);  // PyTorch keeps the NaN's sign
  EXPECT_EQ(encode_e4m3(-kNaN, E4M3Overflow::kSaturate), 0x7F);
}

TEST(E4M3, RoundTripsEveryFiniteCodeInBothModes) {
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7F) == 0x7F) continue;  // the two NaN codes are not finite
    for (E4M3Overflow mode : {E4M3Overflow::kSaturate, E4M3Overflow::kToNaN}) {
      EXPECT_EQ(encode_e4m3(decode_e4m3(code), mode), code) << code;
    }
  }
}

TEST(E4M3, EveryMidpointTiesToEvenAndNeighboursRoundToNearest) {
  for (int c = 0; c < 0x7E; ++c) {  // midpoints between consecutive finite magnitudes
    for (float sign : {1.0f, -1.0f}) {
      const uint8_t s = sign < 0 ? 0x80 : 0x00;
      const float mid = sign * static_cast<float>((e4m3_reference(c) + e4m3_reference(c + 1)) / 2);
      const int even = (c % 2 == 0) ? c : c + 1;
      for (E4M3Overflow mode : {E4M3Overflow::kSaturate, E4M3Overflow::kToNaN}) {
        EXPECT_EQ(encode_e4m3(mid, mode), s | even) << mid;
        EXPECT_EQ(encode_e4m3(std::nextafter(mid, 0.0f), mode), s | c) << mid;
        EXPECT_EQ(encode_e4m3(std::nextafter(mid, sign * kInf), mode), s | (c + 1)) << mid;
      }
    }
  }
}

TEST(E4M3, MatchesBruteForceOnADenseSample) {
  int checked = 0;
  for (float x : testing::float_sample(65537, 20000, 2)) {
    for (E4M3Overflow mode : {E4M3Overflow::kSaturate, E4M3Overflow::kToNaN}) {
      ASSERT_EQ(encode_e4m3(x, mode), reference_encode(x, mode)) << x << " bits " << std::bit_cast<uint32_t>(x);
    }
    ++checked;
  }
  // Every float32 with 8 leading significand bits (the next 16 zero) between 2^-12 and 2^10.
  for (uint32_t bits = std::bit_cast<uint32_t>(0x1p-12f); bits <= std::bit_cast<uint32_t>(0x1p10f); bits += 1u << 15) {
    for (float x : {std::bit_cast<float>(bits), -std::bit_cast<float>(bits)}) {
      ASSERT_EQ(encode_e4m3(x), reference_encode(x, E4M3Overflow::kSaturate)) << x;
    }
    ++checked;
  }
  EXPECT_GT(checked, 80000);
}

}  // namespace
}  // namespace fp4serve
