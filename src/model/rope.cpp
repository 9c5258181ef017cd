#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace fp4serve {

std::vector<float> rope_frequencies(int64_t rope_dim, double base, const YarnConfig* yarn) {
  const int64_t half = rope_dim / 2;
  std::vector<float> freqs(static_cast<size_t>(half));
  // As the reference computes them: fp32 exponents, fp32 powers.
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(rope_dim);
    freqs[i] = 1.0f / std::pow(static_cast<float>(base), exponent);
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
      freqs[i] = freqs[i] / factor * (1.0f - smooth) + freqs[i] * smooth;
    }
  }
  return freqs;
}

std::vector<float> rope_frequencies_for_layer(const ModelConfig& config, int64_t ratio) {
  if (ratio > 0) return rope_frequencies(config.rope_head_dim, config.compress_rope_theta, &config.yarn);
  return rope_frequencies(config.rope_head_dim, config.rope_theta, nullptr);
}

}  // namespace fp4serve
