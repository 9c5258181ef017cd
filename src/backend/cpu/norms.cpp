#include "backend/cpu/norms.h"

#include <cmath>

#include "formats/number_formats.h"
#include "backend/cpu/parallel.h"

namespace fp4serve::cpu {

void rms_norm(const float* x, const float* weight, int64_t n, float eps, float* y) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += x[i] * x[i];
  const float r = 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = round_bf16(weight[i] * (x[i] * r));
}

void rms_norm_rows(const float* x, const float* weight, int64_t rows, int64_t n, float eps, float* y) {
  parallel_units(rows, rows * n * 4, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) rms_norm(x + t * n, weight, n, eps, y + t * n);
  });
}

void head_rms_norm_bf16(float* x, int64_t n, float eps) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += round_bf16(x[i] * x[i]);
  const float mean = round_bf16(sum / static_cast<float>(n));
  const float r = round_bf16(1.0f / std::sqrt(round_bf16(mean + eps)));
  for (int64_t i = 0; i < n; ++i) x[i] = round_bf16(x[i] * r);
}

}  // namespace fp4serve::cpu
