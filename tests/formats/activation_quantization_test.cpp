// DeepSeek activation quantization (act_quant / fp4_act_quant) and its QAT simulation,
// against float64 re-derivations of the rules and brute-force nearest codes.
#include "formats/activation_quantization.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "base/error.h"
#include "format_references.h"
#include "formats/number_formats.h"

namespace fp4serve {
namespace {

using testing::nearest_code;

std::vector<float> random_activations(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    const float row_scale = std::ldexp(1.0f, static_cast<int>(r * 7 % 40) - 20);
    for (int64_t c = 0; c < cols; ++c) x[r * cols + c] = normal(rng) * row_scale;
  }
  std::fill(x.begin(), x.begin() + std::min<int64_t>(cols, 130), 0.0f);  // an all-zero block
  return x;
}

double ceil_pow2(double v) {
  int e;
  const double f = std::frexp(v, &e);
  return f == 0.5 ? v : std::ldexp(1.0, e);
}

double block_amax(const std::vector<float>& x, int64_t begin, int64_t end) {
  double amax = 0;
  for (int64_t i = begin; i < end; ++i) amax = std::max(amax, std::fabs(double{x[i]}));
  return amax;
}

TEST(ActivationFp8, Ue8m0ScalesAndCodesMatchTheRule) {
  const int64_t rows = 6, cols = 300, block = 128, nb = 3;  // last block of each row is partial
  const std::vector<float> x = random_activations(rows, cols, 21);
  std::vector<uint8_t> codes(x.size());
  std::vector<float> scales(rows * nb);
  quantize_activations_fp8(x, rows, cols, block, ActivationScale::kUe8m0, codes, scales);
  std::vector<float> simulated = x;
  simulate_activations_fp8(simulated, rows, cols, block, ActivationScale::kUe8m0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t c0 = r * cols + b * block, c1 = r * cols + std::min(cols, (b + 1) * block);
      const double scale = ceil_pow2(std::max(block_amax(x, c0, c1), double{1e-4f}) / 448.0);
      ASSERT_EQ(scales[r * nb + b], scale) << r << "," << b;
      for (int64_t i = c0; i < c1; ++i) {
        const double q = x[i] / scale;  // exact
        const int expected = (std::signbit(q) ? 0x80 : 0) |
                             std::min(nearest_code(std::fabs(q), testing::e4m3_magnitudes_with_overflow()), 0x7E);
        ASSERT_EQ(codes[i], expected) << i;
        ASSERT_EQ(simulated[i], static_cast<float>(testing::e4m3_reference(codes[i]) * scale)) << i;
        // The simulated value is exactly representable in bf16 (4 significant bits).
        ASSERT_EQ(decode_bf16(encode_bf16(simulated[i])), simulated[i]) << i;
      }
    }
  }
}

TEST(ActivationFp8, Spec63Block) {
  std::vector<float> x(128, 1.0f);
  x[5] = 1000.0f;
  std::vector<uint8_t> codes(128);
  std::vector<float> scales(1);
  quantize_activations_fp8(x, 1, 128, kFp8ActivationBlock, ActivationScale::kUe8m0, codes, scales);
  EXPECT_EQ(scales[0], 4.0f);
  EXPECT_EQ(codes[5], 0x78);
  simulate_activations_fp8(x, 1, 128, kFp8ActivationBlock, ActivationScale::kUe8m0);
  EXPECT_EQ(x[5], 1024.0f);
  EXPECT_EQ(x[0], 1.0f);
}

TEST(ActivationFp8, F32ScaleIsAmaxTimesTheReciprocal) {
  const int64_t rows = 3, cols = 256;
  const std::vector<float> x = random_activations(rows, cols, 22);
  std::vector<uint8_t> codes(x.size());
  std::vector<float> scales(rows * 2);
  quantize_activations_fp8(x, rows, cols, kFp8ActivationBlock, ActivationScale::kF32, codes, scales);
  for (int64_t blk = 0; blk < rows * 2; ++blk) {
    const double amax = std::max(block_amax(x, blk * 128, blk * 128 + 128), double{1e-4f});
    ASSERT_EQ(scales[blk], static_cast<float>(amax * double{1.0f / 448.0f})) << blk;
    for (int64_t i = blk * 128; i < blk * 128 + 128; ++i) {
      const double q = static_cast<float>(double{x[i]} / scales[blk]);
      const int expected = (std::signbit(q) ? 0x80 : 0) |
                           std::min(nearest_code(std::fabs(q), testing::e4m3_magnitudes_with_overflow()), 0x7E);
      ASSERT_EQ(codes[i], expected) << i;
    }
  }
}

TEST(ActivationFp8, NonFiniteValuesBecomeNaNWithoutSpoilingTheBlock) {
  std::vector<float> x(128, 0.5f);
  x[3] = std::numeric_limits<float>::quiet_NaN();
  x[4] = std::numeric_limits<float>::infinity();
  x[5] = 2.0f;
  std::vector<uint8_t> codes(128);
  std::vector<float> scales(1);
  quantize_activations_fp8(x, 1, 128, 128, ActivationScale::kUe8m0, codes, scales);
  EXPECT_EQ(scales[0], 1.0f / 128);  // from amax 2.0
  EXPECT_EQ(codes[3], 0x7F);
  EXPECT_EQ(codes[4], 0x7F);
  simulate_activations_fp8(x, 1, 128, 128, ActivationScale::kUe8m0);
  EXPECT_TRUE(std::isnan(x[3]));
  EXPECT_TRUE(std::isnan(x[4]));
  EXPECT_EQ(x[5], 2.0f);
}

TEST(ActivationFp4, ScalesAndCodesMatchTheRule) {
  const int64_t rows = 7, cols = 96, block = kFp4ActivationBlock, nb = 3;
  const std::vector<float> x = random_activations(rows, cols, 23);
  std::vector<uint8_t> packed(x.size() / 2), scales(rows * nb);
  quantize_activations_fp4(x, rows, cols, block, packed, scales);
  std::vector<float> simulated = x;
  simulate_activations_fp4(simulated, rows, cols, block);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t c0 = r * cols + b * block;
      const double scale = ceil_pow2(std::max(block_amax(x, c0, c0 + block), 6 * std::ldexp(1.0, -126)) / 6);
      ASSERT_EQ(testing::e8m0_reference(scales[r * nb + b]), scale) << r << "," << b;
      for (int64_t i = c0; i < c0 + block; ++i) {
        const double q = x[i] / scale;
        const int expected = (std::signbit(q) ? 8 : 0) |
                             std::min(nearest_code(std::fabs(q), testing::e2m1_magnitudes_with_overflow()), 7);
        const int code = i % 2 == 0 ? (packed[i / 2] & 0xF) : (packed[i / 2] >> 4);
        ASSERT_EQ(code, expected) << i;
        ASSERT_EQ(simulated[i], static_cast<float>(testing::kE2M1Table[code] * scale)) << i;
      }
    }
  }
}

TEST(ActivationFp4, NonFiniteValueMarksTheBlockNaN) {
  std::vector<float> x(64, 1.0f);
  x[40] = std::numeric_limits<float>::quiet_NaN();
  std::vector<uint8_t> packed(32), scales(2);
  quantize_activations_fp4(x, 1, 64, 32, packed, scales);
  EXPECT_EQ(scales[0], 0x7D);  // amax 1: 1/6 rounds up to 2^-2
  EXPECT_EQ(scales[1], 0xFF);
  simulate_activations_fp4(x, 1, 64, 32);
  EXPECT_TRUE(std::isnan(x[40]));
  EXPECT_EQ(x[41], 1.0f);
}

TEST(Activation, BadShapesAreErrors) {
  std::vector<float> x(10);
  std::vector<uint8_t> codes(10), packed(5), scales(1);
  std::vector<float> fscales(1);
  EXPECT_THROW(quantize_activations_fp8(x, 2, 6, 128, ActivationScale::kUe8m0, codes, fscales), Error);
  EXPECT_THROW(quantize_activations_fp8(x, 1, 10, 128, ActivationScale::kUe8m0, codes, std::span<float>()), Error);
  EXPECT_THROW(quantize_activations_fp4(x, 1, 10, 3, packed, scales), Error);
  EXPECT_THROW(simulate_activations_fp4(x, 1, 10, 0), Error);
  std::vector<float> odd(9);
  std::vector<uint8_t> odd_packed(4);
  EXPECT_THROW(quantize_activations_fp4(odd, 1, 9, 32, odd_packed, scales), Error);
}

}  // namespace
}  // namespace fp4serve
