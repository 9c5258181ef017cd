// FP8 / FP4 quantize-dequantize against float64 references that search every code of
// the format (ties to the even code), plus hand-checked vectors of the scale and rounding rules.
#include "backend/cpu/activation_quant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

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

TEST(ActivationQuant, DeepSeekScaleAndRoundingVectors) {
  // An FP8 block of amax 1000 takes the scale 2^ceil(log2(1000 / 448)) = 4: 1000 / 4 = 250
  // rounds to 256 (E4M3 spacing 16 in [128, 256]), 300 / 4 = 75 to 72 (spacing 8 in [64, 128)).
  std::vector<float> x(128, 0.0f), out(128);
  x[0] = 1000.0f;
  x[1] = 300.0f;
  fp8_quantize_dequantize(x.data(), 128, 128, out.data());
  EXPECT_EQ(out[0], 1024.0f);
  EXPECT_EQ(out[1], 288.0f);
  // With amax 448 the scale is 1 and the values round as E4M3 does: to nearest, ties to even,
  // subnormals in steps of 2^-9.
  const float fp8_in[] = {448.0f, 1.0625f, 1.1875f, 300.0f, 0x1p-10f, 1.5f * 0x1p-9f, -0x1p-11f};
  const float fp8_want[] = {448.0f, 1.0f, 1.25f, 288.0f, 0.0f, 0x1p-8f, -0.0f};
  std::fill(x.begin(), x.end(), 0.0f);
  std::copy(std::begin(fp8_in), std::end(fp8_in), x.begin());
  fp8_quantize_dequantize(x.data(), 128, 128, out.data());
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(out[i], fp8_want[i]) << fp8_in[i];
    EXPECT_EQ(std::signbit(out[i]), std::signbit(fp8_want[i])) << fp8_in[i];
  }
  // With amax 6 the FP4 scale is 1; E2M1 ties go to the even code:
  // 0.25->0, 0.75->1, 1.25->1, 1.75->2, 2.5->2, 3.5->4, 5->4.
  const float fp4_in[] = {6.0f, 0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, -0.3f, -0.2f};
  const float fp4_want[] = {6.0f, 0.0f, 1.0f, 1.0f, 2.0f, 2.0f, 4.0f, 4.0f, -0.5f, -0.0f};
  std::vector<float> y(32, 0.0f), y_out(32);
  std::copy(std::begin(fp4_in), std::end(fp4_in), y.begin());
  fp4_quantize_dequantize(y.data(), 32, 32, y_out.data());
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(y_out[i], fp4_want[i]) << fp4_in[i];
    EXPECT_EQ(std::signbit(y_out[i]), std::signbit(fp4_want[i])) << fp4_in[i];
  }
}

}  // namespace
}  // namespace fp4serve::cpu
