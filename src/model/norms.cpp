#include "model/norms.h"

#include <cmath>

#include "formats/number_formats.h"

namespace fp4serve {


void rms_norm(const float* x, const float* weight, int64_t n, float eps, float* y) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += x[i] * x[i];
  const float r = 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = round_bf16(weight[i] * (x[i] * r));
}

void head_rms_norm_bf16(float* x, int64_t n, float eps) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += round_bf16(x[i] * x[i]);
  const float mean = round_bf16(sum / static_cast<float>(n));
  const float r = round_bf16(1.0f / std::sqrt(round_bf16(mean + eps)));
  for (int64_t i = 0; i < n; ++i) x[i] = round_bf16(x[i] * r);
}

}  // namespace fp4serve
