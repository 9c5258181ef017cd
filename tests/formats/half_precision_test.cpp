// BF16 and F16: every 16-bit pattern decoded, encode checked against independent references
// on a dense sample (every bf16 tie included).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "format_references.h"
#include "formats/number_formats.h"

namespace fp4serve {
namespace {

// BF16 by its definition: 1 sign, 8 exponent (bias 127), 7 mantissa bits.
double bf16_reference(uint16_t bits) {
  const int s = bits >> 15, e = (bits >> 7) & 0xFF, m = bits & 0x7F;
  double magnitude;
  if (e == 0xFF) {
    magnitude = m == 0 ? std::numeric_limits<double>::infinity() : testing::kNaN;
  } else {
    magnitude = e == 0 ? m * std::ldexp(1.0, -133) : (1.0 + m / 128.0) * std::ldexp(1.0, e - 127);
  }
  return s ? -magnitude : magnitude;
}

// Independent BF16 rounding: take the two bf16 neighbours of x (the truncation and the next
// magnitude up), compare distances in float64 (exact here), ties to the even pattern. The
// pattern past the largest finite one is Inf, which stands for 2^128 when measuring distance.
uint16_t bf16_reference_encode(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint16_t low = static_cast<uint16_t>((bits >> 16) & 0x7FFFu);
  const uint16_t high = static_cast<uint16_t>(low + 1);
  const double ax = std::fabs(static_cast<double>(x));
  const double low_value = bf16_reference(low);
  const double high_value = high == 0x7F80 ? std::ldexp(1.0, 128) : bf16_reference(high);
  const double d_low = ax - low_value, d_high = high_value - ax;
  const bool take_high = d_high < d_low || (d_high == d_low && (high & 1) == 0);
  return static_cast<uint16_t>(sign | (take_high ? high : low));
}

float f16_via_compiler(uint16_t bits) {
  _Float16 h;
  std::memcpy(&h, &bits, 2);
  return static_cast<float>(h);
}

uint16_t f16_encode_via_compiler(float x) {
  const _Float16 h = static_cast<_Float16>(x);  // libgcc's IEEE conversion, round to nearest even
  uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}

TEST(BF16, DecodesEveryPatternAsTheDefinition) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const double expected = bf16_reference(bits);
    const float v = decode_bf16(bits);
    if (std::isnan(expected)) {
      ASSERT_TRUE(std::isnan(v)) << bits;
    } else {
      ASSERT_EQ(static_cast<double>(v), expected) << bits;
      ASSERT_EQ(std::signbit(v), bits >= 0x8000) << bits;
    }
  }
}

TEST(BF16, EncodeMatchesAnIndependentRoundingOnEveryTieAndNeighbour) {
  // Every bf16 pattern as the high half, with low halves at the tie (0x8000), just around
  // it, at the ends, and a few random ones: ~590k values, both signs, all binades.
  std::mt19937 rng(4);
  int checked = 0;
  for (uint32_t high = 0; high < 65536; ++high) {
    if ((high & 0x7F80) == 0x7F80) continue;  // Inf/NaN handled below
    const uint32_t r1 = rng() & 0xFFFFu, r2 = rng() & 0xFFFFu, r3 = rng() & 0xFFFFu;
    for (uint32_t low : {0x0000u, 0x0001u, 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu, r1, r2, r3}) {
      const float x = std::bit_cast<float>((high << 16) | low);
      ASSERT_EQ(encode_bf16(x), bf16_reference_encode(x)) << std::hex << ((high << 16) | low);
      ++checked;
    }
  }
  EXPECT_GT(checked, 500000);
}

TEST(BF16, RoundTripsEveryNonNaNPattern) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    if (std::isnan(decode_bf16(bits))) continue;
    ASSERT_EQ(encode_bf16(decode_bf16(bits)), bits) << bits;
  }
}

TEST(BF16, NaNStaysNaNAndInfStaysInf) {
  for (uint32_t payload : {0x00000001u, 0x00000100u, 0x00010000u, 0x00400000u, 0x007FFFFFu}) {
    for (uint32_t sign : {0u, 0x80000000u}) {
      const float nan = std::bit_cast<float>(sign | 0x7F800000u | payload);
      ASSERT_TRUE(std::isnan(nan));
      EXPECT_TRUE(std::isnan(decode_bf16(encode_bf16(nan)))) << std::hex << payload;
    }
  }
  EXPECT_EQ(encode_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(encode_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(encode_bf16(std::numeric_limits<float>::max()), 0x7F80);  // rounds up past the top: Inf
}

TEST(F16, DecodesEveryPatternAsTheCompiler) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const float expected = f16_via_compiler(bits);
    const float v = decode_f16(bits);
    if (std::isnan(expected)) {
      ASSERT_TRUE(std::isnan(v)) << bits;
    } else {
      ASSERT_EQ(std::bit_cast<uint32_t>(v), std::bit_cast<uint32_t>(expected)) << bits;
    }
  }
}

TEST(F16, EncodeMatchesTheCompilerOnEveryTieAndADenseSample) {
  int checked = 0;
  auto check = [&](float x) {
    const uint16_t expected = f16_encode_via_compiler(x);
    if (std::isnan(x)) {
      ASSERT_TRUE(std::isnan(decode_f16(encode_f16(x))));
    } else {
      ASSERT_EQ(encode_f16(x), expected) << x << " bits " << std::hex << std::bit_cast<uint32_t>(x);
    }
    ++checked;
  };
  // Every midpoint between consecutive f16 magnitudes (exact in fp32), one ulp either side.
  for (uint32_t bits = 0; bits < 0x7C00; ++bits) {
    const float mid = static_cast<float>((static_cast<double>(decode_f16(bits)) + decode_f16(bits + 1)) / 2);
    for (float x : {mid, testing::ulp_below(mid), testing::ulp_above(mid)}) {
      check(x);
      check(-x);
    }
  }
  for (float x : {65504.0f, 65519.0f, 65520.0f, testing::ulp_below(65520.0f), 1e6f}) {
    check(x);
    check(-x);
  }
  EXPECT_EQ(encode_f16(65520.0f), 0x7C00);  // the tie above the largest finite value overflows
  for (float x : testing::float_sample(4099, 20000, 5)) check(x);
  EXPECT_GT(checked, 1000000);
}

TEST(F16, RoundTripsEveryNonNaNPattern) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    if (std::isnan(decode_f16(bits))) continue;
    ASSERT_EQ(encode_f16(decode_f16(bits)), bits) << bits;
  }
}

}  // namespace
}  // namespace fp4serve
