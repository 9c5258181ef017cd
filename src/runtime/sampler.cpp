#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"

namespace fp4serve {

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {
  FP4SERVE_CHECK(params.temperature >= 0.0f && std::isfinite(params.temperature), "temperature {} must be >= 0",
                 params.temperature);
  FP4SERVE_CHECK(params.top_p > 0.0f && params.top_p <= 1.0f, "top_p {} must be in (0, 1]", params.top_p);
}

int32_t Sampler::sample(std::span<const float> logits) {
  FP4SERVE_CHECK(!logits.empty(), "sampling from empty logits");
  if (params_.temperature == 0.0f)
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  const float mx = *std::max_element(logits.begin(), logits.end());
  candidates_.clear();
  double total = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float p = std::exp((logits[i] - mx) / params_.temperature);
    candidates_.push_back({p, static_cast<int32_t>(i)});
    total += p;
  }
  std::sort(candidates_.begin(), candidates_.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  // Keep the most likely tokens until their mass reaches top_p (at least one).
  double mass = 0;
  size_t keep = 0;
  while (keep < candidates_.size() && (keep == 0 || mass < params_.top_p * total)) mass += candidates_[keep++].first;
  std::uniform_real_distribution<double> u(0.0, mass);
  double draw = u(rng_);
  for (size_t i = 0; i < keep; ++i) {
    draw -= candidates_[i].first;
    if (draw < 0) return candidates_[i].second;
  }
  return candidates_[keep - 1].second;
}

}  // namespace fp4serve
