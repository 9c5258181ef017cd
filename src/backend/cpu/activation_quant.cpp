#include "backend/cpu/activation_quant.h"

#include <algorithm>
#include <cmath>

#include "formats/number_formats.h"

namespace fp4serve::cpu {

void fp8_quantize_dequantize(const float* x, int64_t n, int64_t block, float* out) {
  for (int64_t b = 0; b < n; b += block) {
    float amax = 0.0f;
    for (int64_t i = b; i < b + block; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float s = decode_e8m0(encode_e8m0_ceil_of_normal(std::max(amax, 1e-4f) * (1.0f / 448.0f)));
    const float inv = 1.0f / s;  // exact: s is a power of two
    for (int64_t i = b; i < b + block; ++i) out[i] = decode_e4m3(encode_e4m3(std::clamp(x[i] * inv, -448.0f, 448.0f))) * s;
  }
}

void fp4_quantize_dequantize(const float* x, int64_t n, int64_t block, float* out) {
  for (int64_t b = 0; b < n; b += block) {
    float amax = 0.0f;
    for (int64_t i = b; i < b + block; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float s = decode_e8m0(encode_e8m0_ceil_of_normal(std::max(amax, 6.0f * 0x1p-126f) * (1.0f / 6.0f)));
    const float inv = 1.0f / s;  // exact: s is a power of two
    for (int64_t i = b; i < b + block; ++i) out[i] = decode_e2m1(encode_e2m1(std::clamp(x[i] * inv, -6.0f, 6.0f))) * s;
  }
}

}  // namespace fp4serve::cpu
