// E8M0 (decode, DeepSeek's ceil rule, PyTorch's cast rule) and E5M2 decode: all 256 codes.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "base/error.h"
#include "format_references.h"
#include "formats/number_formats.h"

namespace fp4serve {
namespace {

// Smallest power of two >= x, by frexp (x = f * 2^e, f in [0.5, 1)): x itself when f == 0.5.
double reference_ceil_pow2(double x) {
  int e = 0;
  const double f = std::frexp(x, &e);
  return f == 0.5 ? x : std::ldexp(1.0, e);
}

TEST(E8M0, DecodesEveryCodeAsTheDefinition) {
  for (int code = 0; code < 255; ++code) EXPECT_EQ(decode_e8m0(code), testing::e8m0_reference(code)) << code;
  EXPECT_TRUE(std::isnan(decode_e8m0(0xFF)));
}

TEST(E8M0, Spec63Decodes) {
  EXPECT_EQ(decode_e8m0(0x00), 5.877471754111438e-39f);
  EXPECT_EQ(decode_e8m0(0x01), 0x1p-126f);
  EXPECT_EQ(decode_e8m0(0x7E), 0.5f);
  EXPECT_EQ(decode_e8m0(0x7F), 1.0f);
  EXPECT_EQ(decode_e8m0(0x80), 2.0f);
  EXPECT_EQ(decode_e8m0(0x82), 8.0f);
  EXPECT_EQ(decode_e8m0(0xFE), 0x1p127f);
}

TEST(E8M0, CeilRoundTripsEveryCode) {
  for (int code = 0; code < 255; ++code) EXPECT_EQ(encode_e8m0_ceil(decode_e8m0(code)), code) << code;
}

TEST(E8M0, CeilIsTheSmallestPowerOfTwoAtOrAbove) {
  for (int k = -126; k <= 127; ++k) {
    const float p = std::ldexp(1.0f, k);
    for (float x : {p, testing::ulp_below(p), testing::ulp_above(p), 1.5f * p, 1.25f * p, 1.75f * p}) {
      if (!(x <= 0x1p127f) || x <= 0x1p-127f) continue;
      const double expected = reference_ceil_pow2(x);
      EXPECT_EQ(decode_e8m0(encode_e8m0_ceil(x)), expected) << x;
    }
  }
  for (float x : testing::float_sample(4099, 5000, 3)) {
    if (!(x > 0x1p-127f && x <= 0x1p127f)) continue;
    ASSERT_EQ(decode_e8m0(encode_e8m0_ceil(x)), reference_ceil_pow2(x)) << x;
  }
}

TEST(E8M0, UncheckedCeilOfNormalsIsTheSmallestPowerOfTwoAtOrAbove) {
  for (int k = -126; k <= 126; ++k) {
    const float p = std::ldexp(1.0f, k);
    for (float x : {p, testing::ulp_above(p), 1.5f * p, 1.25f * p, 1.75f * p, testing::ulp_below(2.0f * p)}) {
      ASSERT_EQ(decode_e8m0(encode_e8m0_ceil_of_normal(x)), reference_ceil_pow2(x)) << x;
    }
  }
  for (float x : testing::float_sample(4099, 5000, 4)) {
    if (!(x >= 0x1p-126f && x <= 0x1p127f)) continue;
    ASSERT_EQ(decode_e8m0(encode_e8m0_ceil_of_normal(x)), reference_ceil_pow2(x)) << x;
  }
  // Past the largest scale (2^127) there is nothing to round up to: NaN, never a wrapped code.
  EXPECT_EQ(encode_e8m0_ceil_of_normal(testing::ulp_above(0x1p127f)), 0xFF);
  EXPECT_EQ(encode_e8m0_ceil_of_normal(std::numeric_limits<float>::max()), 0xFF);
  EXPECT_EQ(encode_e8m0_ceil_of_normal(std::numeric_limits<float>::infinity()), 0xFF);
}

TEST(E8M0, CeilEdgeCasesAndErrors) {
  EXPECT_EQ(encode_e8m0_ceil(0.0f), 0x00);
  EXPECT_EQ(encode_e8m0_ceil(-0.0f), 0x00);
  EXPECT_EQ(encode_e8m0_ceil(std::numeric_limits<float>::denorm_min()), 0x00);
  EXPECT_EQ(encode_e8m0_ceil(0x1p-127f), 0x00);
  EXPECT_EQ(encode_e8m0_ceil(testing::ulp_above(0x1p-127f)), 0x01);
  EXPECT_EQ(encode_e8m0_ceil(0x1p127f), 0xFE);
  EXPECT_THROW(encode_e8m0_ceil(testing::ulp_above(0x1p127f)), Error);
  EXPECT_THROW(encode_e8m0_ceil(std::numeric_limits<float>::infinity()), Error);
  EXPECT_THROW(encode_e8m0_ceil(std::numeric_limits<float>::quiet_NaN()), Error);
  EXPECT_THROW(encode_e8m0_ceil(-1.0f), Error);
}

TEST(E8M0, Spec63ScaleSelection) {
  EXPECT_EQ(encode_e8m0_ceil(3.0f / 6.0f), 0x7E);
  EXPECT_EQ(encode_e8m0_ceil(7.0f / 6.0f), 0x80);
  EXPECT_EQ(encode_e8m0_ceil(300.0f / 448.0f), 0x7F);
  const uint8_t scale = encode_e8m0_ceil(1000.0f / 448.0f);
  EXPECT_EQ(scale, 0x81);
  EXPECT_EQ(encode_e4m3(1000.0f / decode_e8m0(scale)), 0x78);
  EXPECT_EQ(decode_e4m3(0x78) * decode_e8m0(scale), 1024.0f);
}

TEST(E8M0, TorchCastRoundsByTheTopMantissaBitNotCeil) {
  // PyTorch's tensor(x).to(float8_e8m0fnu).
  EXPECT_EQ(encode_e8m0_torch(1.2f), 0x7F);
  EXPECT_EQ(encode_e8m0_torch(1.49f), 0x7F);
  EXPECT_EQ(encode_e8m0_torch(1.5f), 0x80);
  EXPECT_EQ(encode_e8m0_torch(0.75f), 0x7F);
  EXPECT_EQ(encode_e8m0_torch(0.3f), 0x7D);
  EXPECT_EQ(encode_e8m0_torch(6.0f), 0x82);
  EXPECT_EQ(encode_e8m0_torch(-1.5f), 0x80);  // the sign is dropped
  EXPECT_EQ(encode_e8m0_torch(std::numeric_limits<float>::infinity()), 0xFF);
  EXPECT_EQ(encode_e8m0_torch(std::numeric_limits<float>::quiet_NaN()), 0xFF);
  // Where they differ: ceil never picks a power below x, the cast does.
  EXPECT_EQ(encode_e8m0_ceil(1.2f), 0x80);
  EXPECT_LT(decode_e8m0(encode_e8m0_torch(1.2f)), 1.2f);
}

TEST(E8M0, TorchCastRoundTripsEveryCode) {
  for (int code = 0; code < 255; ++code) EXPECT_EQ(encode_e8m0_torch(decode_e8m0(code)), code) << code;
}

TEST(E5M2, DecodesEveryCodeAsTheDefinition) {
  for (int code = 0; code < 256; ++code) {
    const double expected = testing::e5m2_reference(code);
    const float v = decode_e5m2(code);
    if (std::isnan(expected)) {
      EXPECT_TRUE(std::isnan(v)) << code;
    } else {
      EXPECT_EQ(static_cast<double>(v), expected) << code;
      EXPECT_EQ(std::signbit(v), code >= 0x80) << code;
    }
  }
  EXPECT_EQ(decode_e5m2(0x7B), 57344.0f);
  EXPECT_EQ(decode_e5m2(0x01), 0x1p-16f);
}

}  // namespace
}  // namespace fp4serve
