// FP4 E2M1: all 16 codes, the OCP MX value table, every tie, saturation, packing.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "format_references.h"
#include "formats/number_formats.h"

namespace fp4serve {
namespace {

using testing::e2m1_magnitudes_with_overflow;
using testing::kE2M1Table;
using testing::nearest_code;

// Reference encode: brute-force nearest magnitude (ties to even code), overflow saturates to
// code 7, sign from the sign bit, NaN -> 0x7.
uint8_t reference_encode(float x) {
  if (std::isnan(x)) return 0x7;
  const int code = nearest_code(std::fabs(static_cast<double>(x)), e2m1_magnitudes_with_overflow());
  return static_cast<uint8_t>((std::signbit(x) ? 0x8 : 0x0) | (code > 7 ? 7 : code));
}

TEST(E2M1, DecodesEveryCodeAsTheTable) {
  for (int code = 0; code < 16; ++code) {
    const float v = decode_e2m1(static_cast<uint8_t>(code));
    EXPECT_EQ(v, kE2M1Table[code]) << "code " << code;
    EXPECT_EQ(std::signbit(v), code >= 8) << "code " << code << " sign";
  }
}

TEST(E2M1, DecodeIgnoresHighBits) {
  for (int code = 0; code < 256; ++code) EXPECT_EQ(decode_e2m1(code), kE2M1Table[code & 0xF]) << code;
}

TEST(E2M1, Spec61PackedBytes) {
  struct Case {
    uint8_t byte;
    float even, odd;
  };
  for (const Case& c :
       {Case{0x21, 0.5f, 1.0f}, Case{0xF7, 6.0f, -6.0f}, Case{0x9A, -1.0f, -0.5f}, Case{0x4C, -2.0f, 2.0f}}) {
    EXPECT_EQ(decode_e2m1(e2m1_even(c.byte)), c.even) << std::hex << int(c.byte);
    EXPECT_EQ(decode_e2m1(e2m1_odd(c.byte)), c.odd) << std::hex << int(c.byte);
    EXPECT_EQ(pack_e2m1(encode_e2m1(c.even), encode_e2m1(c.odd)), c.byte) << std::hex << int(c.byte);
  }
}

TEST(E2M1, Spec61Encodes) {
  struct Case {
    float x;
    uint8_t code;
  };
  for (const Case& c : {Case{0.25f, 0x0}, Case{0.75f, 0x2}, Case{1.25f, 0x2}, Case{1.75f, 0x4}, Case{2.5f, 0x4},
                        Case{3.5f, 0x6}, Case{5.0f, 0x6}, Case{7.0f, 0x7}, Case{-0.3f, 0x9}, Case{-0.1f, 0x8}}) {
    EXPECT_EQ(encode_e2m1(c.x), c.code) << c.x;
  }
}

TEST(E2M1, RoundTripsEveryCode) {
  for (int code = 0; code < 16; ++code) EXPECT_EQ(encode_e2m1(decode_e2m1(code)), code) << code;
}

TEST(E2M1, EveryMidpointTiesToEvenAndNeighboursRoundToNearest) {
  for (int c = 0; c < 7; ++c) {
    for (float sign : {1.0f, -1.0f}) {
      const float mid = sign * static_cast<float>((kE2M1Table[c] + kE2M1Table[c + 1]) / 2);
      const uint8_t s = sign < 0 ? 0x8 : 0x0;
      const int even = (c % 2 == 0) ? c : c + 1;
      EXPECT_EQ(encode_e2m1(mid), s | even) << "midpoint " << mid;
      const float toward_zero = std::nextafter(mid, 0.0f);
      const float away = std::nextafter(mid, sign * std::numeric_limits<float>::infinity());
      EXPECT_EQ(encode_e2m1(toward_zero), s | c) << toward_zero;
      EXPECT_EQ(encode_e2m1(away), s | (c + 1)) << away;
    }
  }
}

TEST(E2M1, SaturatesAndHandlesSpecials) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(encode_e2m1(6.0f), 0x7);
  EXPECT_EQ(encode_e2m1(1e30f), 0x7);
  EXPECT_EQ(encode_e2m1(inf), 0x7);
  EXPECT_EQ(encode_e2m1(-inf), 0xF);
  EXPECT_EQ(encode_e2m1(-1e30f), 0xF);
  EXPECT_EQ(encode_e2m1(std::numeric_limits<float>::quiet_NaN()), 0x7);
  EXPECT_EQ(encode_e2m1(0.0f), 0x0);
  EXPECT_EQ(encode_e2m1(-0.0f), 0x8);
  EXPECT_EQ(encode_e2m1(std::numeric_limits<float>::denorm_min()), 0x0);
  EXPECT_EQ(encode_e2m1(-std::numeric_limits<float>::denorm_min()), 0x8);
}

TEST(E2M1, MatchesBruteForceOnADenseSample) {
  int checked = 0;
  for (float x : testing::float_sample(65537, 20000, 1)) {
    ASSERT_EQ(encode_e2m1(x), reference_encode(x)) << x;
    ++checked;
  }
  // Densely over the interesting range too: every 2^-10 step in [-8, 8].
  for (int i = -8192; i <= 8192; ++i) {
    const float x = std::ldexp(static_cast<float>(i), -10);
    ASSERT_EQ(encode_e2m1(x), reference_encode(x)) << x;
    ++checked;
  }
  EXPECT_GT(checked, 100000);
}

TEST(E2M1, PackingPutsTheEvenElementInTheLowNibble) {
  for (int even = 0; even < 16; ++even) {
    for (int odd = 0; odd < 16; ++odd) {
      const uint8_t byte = pack_e2m1(even, odd);
      EXPECT_EQ(byte, even + 16 * odd);
      EXPECT_EQ(e2m1_even(byte), even);
      EXPECT_EQ(e2m1_odd(byte), odd);
    }
  }
}

}  // namespace
}  // namespace fp4serve
