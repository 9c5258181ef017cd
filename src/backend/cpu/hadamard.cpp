#include "backend/cpu/hadamard.h"

#include <cmath>

#include "formats/number_formats.h"

namespace fp4serve::cpu {

void hadamard_rotate(float* x, int64_t n) {
  for (int64_t h = 1; h < n; h *= 2)
    for (int64_t i = 0; i < n; i += 2 * h)
      for (int64_t j = i; j < i + h; ++j) {
        const float a = x[j], b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));  // n ** -0.5, as the reference passes it
  for (int64_t i = 0; i < n; ++i) x[i] = round_bf16(x[i] * scale);
}

}  // namespace fp4serve::cpu
