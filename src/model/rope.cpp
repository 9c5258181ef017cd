#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "formats/number_formats.h"

namespace fp4serve {

RopeTable::RopeTable(int64_t rope_dim, double base, const YarnConfig* yarn) : dim_(rope_dim) {
  const int64_t half = rope_dim / 2;
  freqs_.resize(static_cast<size_t>(half));
  // As the reference computes them: fp32 exponents, fp32 powers.
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(rope_dim);
    freqs_[i] = 1.0f / std::pow(static_cast<float>(base), exponent);
  }
  if (yarn != nullptr && yarn->original_max_position > 0) {
    auto correction_dim = [&](double rotations) {
      return static_cast<double>(rope_dim) * std::log(static_cast<double>(yarn->original_max_position) / (rotations * 2 * std::numbers::pi)) /
             (2 * std::log(base));
    };
    const double low = std::max(std::floor(correction_dim(yarn->beta_fast)), 0.0);
    double high = std::min(std::ceil(correction_dim(yarn->beta_slow)), static_cast<double>(rope_dim - 1));
    if (low == high) high += 0.001;
    const float factor = static_cast<float>(yarn->factor);
    for (int64_t i = 0; i < half; ++i) {
      const float ramp = std::clamp((static_cast<float>(i) - static_cast<float>(low)) / static_cast<float>(high - low), 0.0f, 1.0f);
      const float smooth = 1.0f - ramp;
      freqs_[i] = freqs_[i] / factor * (1.0f - smooth) + freqs_[i] * smooth;
    }
  }
}

void RopeTable::angles(int64_t position, float* cos, float* sin) const {
  const float p = static_cast<float>(position);
  for (int64_t i = 0; i < dim_ / 2; ++i) {
    const float angle = p * freqs_[i];
    cos[i] = std::cos(angle);
    sin[i] = std::sin(angle);
  }
}

void RopeTable::rotate(float* v, const float* cos, const float* sin, bool inverse) const {
  for (int64_t i = 0; i < dim_ / 2; ++i) {
    const float c = cos[i], s = inverse ? -sin[i] : sin[i];
    const float a = v[2 * i], b = v[2 * i + 1];
    v[2 * i] = round_bf16(a * c - b * s);
    v[2 * i + 1] = round_bf16(a * s + b * c);
  }
}

void RopeTable::apply(float* v, int64_t position, bool inverse) const {
  float c[256], s[256];
  angles(position, c, s);
  rotate(v, c, s, inverse);
}

RopeTable rope_for_layer(const ModelConfig& config, int64_t ratio) {
  if (ratio > 0) return RopeTable(config.rope_head_dim, config.compress_rope_theta, &config.yarn);
  return RopeTable(config.rope_head_dim, config.rope_theta, nullptr);
}

}  // namespace fp4serve
