// Deterministic weight matrices for the quantizer tests: Gaussian values whose scale varies
// by row (2^-6 .. 2^4), with an all-zero stretch, tiny values and a few outliers, so that
// blocks see very different amaxes.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace fp4serve::testing {

inline std::vector<float> random_weights(int64_t n, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(n * k));
  for (int64_t r = 0; r < n; ++r) {
    const float row_scale = std::ldexp(1.0f, static_cast<int>(r % 11) - 6);
    for (int64_t c = 0; c < k; ++c) w[r * k + c] = normal(rng) * row_scale;
  }
  for (int64_t c = 0; c < k && c < 40; ++c) w[c] = 0.0f;  // zero blocks in row 0
  if (n > 1) {
    for (int64_t c = 0; c < k; ++c) w[k + c] *= 1e-30f;  // a row of tiny values
  }
  std::uniform_int_distribution<int64_t> pick(0, n * k - 1);
  for (int i = 0; i < 5; ++i) w[pick(rng)] = (i % 2 ? -1.0f : 1.0f) * 300.0f;  // outliers
  return w;
}

}  // namespace fp4serve::testing
