// FP8 / FP4 quantize-dequantize against float64 references that search every code of
// the format (ties to the even code), plus the spec's test vectors.
#include "backend/cpu/activation_quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend/cpu/numeric_formats.h"
#include "test_weights.h"

namespace fp4serve::cpu {
namespace {

double nearest_code_value(double v, int codes, double (*decode)(uint8_t), bool (*valid)(int)) {
  double best = 0, best_err = INFINITY;
  int best_code = -1;
  for (int c = 0; c < codes; ++c) {
    if (!valid(c)) continue;
    const double x = decode(static_cast<uint8_t>(c));
    const double err = std::fabs(x - v);
    if (err < best_err || (err == best_err && (c & 1) == 0)) best = x, best_err = err, best_code = c;
  }
  EXPECT_GE(best_code, 0);
  return best;
}

std::vector<float> test_input(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = normal(rng) * std::ldexp(1.0f, static_cast<int>(i / 64) - 4);
  x[5] = 0.0f;
  return x;
}

TEST(ActivationQuant, Fp8BlocksMatchExhaustiveReference) {
  const auto x = test_input(512, 1);
  for (int64_t block : {64, 128}) {
    std::vector<float> out(x.size());
    fp8_quantize_dequantize(x.data(), static_cast<int64_t>(x.size()), block, out.data());
    for (size_t b = 0; b < x.size(); b += static_cast<size_t>(block)) {
      double amax = 1e-4;
      for (size_t i = b; i < b + static_cast<size_t>(block); ++i) amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
      const double s = std::ldexp(1.0, static_cast<int>(std::ceil(std::log2(amax / 448.0))));
      for (size_t i = b; i < b + static_cast<size_t>(block); ++i) {
        const double q = nearest_code_value(x[i] / s, 256, testing::ref_e4m3, [](int c) { return (c & 0x7F) != 0x7F; });
        ASSERT_EQ(out[i], static_cast<float>(q * s)) << "block " << block << " element " << i;
      }
    }
  }
}

TEST(ActivationQuant, Fp4BlocksMatchExhaustiveReference) {
  const auto x = test_input(256, 2);
  std::vector<float> out(x.size());
  fp4_quantize_dequantize(x.data(), static_cast<int64_t>(x.size()), 32, out.data());
  for (size_t b = 0; b < x.size(); b += 32) {
    double amax = 6 * std::ldexp(1.0, -126);
    for (size_t i = b; i < b + 32; ++i) amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
    const double s = std::ldexp(1.0, static_cast<int>(std::ceil(std::log2(amax / 6.0))));
    for (size_t i = b; i < b + 32; ++i) {
      const double q = nearest_code_value(x[i] / s, 16, testing::ref_e2m1, [](int) { return true; });
      ASSERT_EQ(std::fabs(out[i]), std::fabs(static_cast<float>(q * s))) << "element " << i;
    }
  }
}

TEST(ActivationQuant, SpecVectors) {
  // formats-and-kernels.md §6.3: FP8 block amax 1000 -> scale 4, 1000/4 = 250 -> 256.
  std::vector<float> x(128, 0.0f), out(128);
  x[0] = 1000.0f;
  x[1] = 300.0f;
  fp8_quantize_dequantize(x.data(), 128, 128, out.data());
  EXPECT_EQ(out[0], 1024.0f);
  EXPECT_EQ(out[1], 288.0f);  // 75 -> 72 (e4m3 spacing 8 in [64,128))
  // §3.1 E2M1 ties to even: 0.25->0, 0.75->1, 1.25->1, 1.75->2, 2.5->2, 3.5->4, 5->4.
  const float in[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 7.0f, -0.3f};
  const float want[] = {0.0f, 1.0f, 1.0f, 2.0f, 2.0f, 4.0f, 4.0f, 6.0f, -0.5f};
  for (int i = 0; i < 9; ++i) EXPECT_EQ(round_to_e2m1(in[i]), want[i]) << in[i];
  // §6.2 E4M3 rounding.
  EXPECT_EQ(round_to_e4m3(1.0625f), 1.0f);
  EXPECT_EQ(round_to_e4m3(1.1875f), 1.25f);
  EXPECT_EQ(round_to_e4m3(300.0f), 288.0f);
  EXPECT_EQ(round_to_e4m3(std::ldexp(1.0f, -10)), 0.0f);
  EXPECT_EQ(round_to_e4m3(1.5f * std::ldexp(1.0f, -9)), 2 * std::ldexp(1.0f, -9));
}

TEST(NumericFormats, E4M3TableMatchesDefinitionForEveryByte) {
  for (int b = 0; b < 256; ++b) {
    if ((b & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(e4m3_to_float(static_cast<uint8_t>(b))));
      continue;
    }
    EXPECT_EQ(e4m3_to_float(static_cast<uint8_t>(b)), static_cast<float>(testing::ref_e4m3(static_cast<uint8_t>(b)))) << b;
  }
  EXPECT_EQ(e8m0_to_float(0x7F), 1.0f);
  EXPECT_EQ(e8m0_to_float(0x82), 8.0f);
  EXPECT_TRUE(std::isnan(e8m0_to_float(0xFF)));
  EXPECT_EQ(pow2_ceil(3.0f / 6.0f), 0.5f);
  EXPECT_EQ(pow2_ceil(7.0f / 6.0f), 2.0f);
  EXPECT_EQ(float_to_bf16(1.00390625f), 0x3F80);  // tie -> even
  EXPECT_EQ(float_to_bf16(1.01171875f), 0x3F82);
}

}  // namespace
}  // namespace fp4serve::cpu
