#include "backend/cpu/rope.h"

#include <cmath>

#include "formats/number_formats.h"
#include "base/error.h"

namespace fp4serve::cpu {

void Rope::angles(int64_t position, float* cos, float* sin) const {
  const float p = static_cast<float>(position);
  for (int64_t i = 0; i < dim_ / 2; ++i) {
    const float angle = p * freqs_[i];
    cos[i] = std::cos(angle);
    sin[i] = std::sin(angle);
  }
}

void Rope::rotate(float* v, const float* cos, const float* sin, bool inverse) const {
  for (int64_t i = 0; i < dim_ / 2; ++i) {
    const float c = cos[i], s = inverse ? -sin[i] : sin[i];
    const float a = v[2 * i], b = v[2 * i + 1];
    v[2 * i] = round_bf16(a * c - b * s);
    v[2 * i + 1] = round_bf16(a * s + b * c);
  }
}

void Rope::apply(float* v, int64_t position, bool inverse) const {
  constexpr int64_t kMaxHalf = 256;
  FP4SERVE_CHECK(dim_ / 2 <= kMaxHalf, "rope_head_dim {} above the {} supported", dim_, 2 * kMaxHalf);
  float c[kMaxHalf], s[kMaxHalf];
  angles(position, c, s);
  rotate(v, c, s, inverse);
}

}  // namespace fp4serve::cpu
