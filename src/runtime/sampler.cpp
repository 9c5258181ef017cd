#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "base/error.h"
#include "runtime/mix64.h"

namespace fp4serve::runtime {
namespace {

// More likely first; equal probabilities by ascending id, so ties are stable.
bool more_likely(const TokenProbability& a, const TokenProbability& b) {
  return a.probability != b.probability ? a.probability > b.probability : a.token < b.token;
}

void apply_bias_and_penalties(std::vector<float>& logits, const SamplingParams& params,
                              const PenaltyHistory& history) {
  const auto vocab = static_cast<int32_t>(logits.size());
  for (const auto& [token, bias] : params.logit_bias) {
    if (token >= 0 && token < vocab) logits[token] += static_cast<float>(bias);
  }
  if (params.repetition_penalty != 1.0) {
    auto penalize = [&](int32_t t) {
      if (t < 0 || t >= vocab) return;
      float& l = logits[t];
      l = l > 0 ? static_cast<float>(l / params.repetition_penalty) : static_cast<float>(l * params.repetition_penalty);
    };
    for (int32_t t : history.prompt_tokens) penalize(t);
    for (const auto& [t, count] : history.generated_counts) {
      if (!history.prompt_tokens.count(t)) penalize(t);
    }
  }
  if (params.frequency_penalty != 0.0 || params.presence_penalty != 0.0) {
    for (const auto& [t, count] : history.generated_counts) {
      if (t < 0 || t >= vocab) continue;
      logits[t] -= static_cast<float>(params.frequency_penalty * count + params.presence_penalty);
    }
  }
}

int32_t argmax(const std::vector<float>& logits) {
  // std::max_element returns the first maximum: ties go to the lowest id.
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

}  // namespace

std::vector<TokenProbability> next_token_distribution(std::span<const float> raw, const SamplingParams& params,
                                                      const PenaltyHistory& history) {
  FP4SERVE_CHECK(!raw.empty(), "sampler: empty logits");
  std::vector<float> logits(raw.begin(), raw.end());
  apply_bias_and_penalties(logits, params, history);
  const int32_t best = argmax(logits);
  const double max_logit = logits[best];
  // NaN or infinite logits mean a broken model step: fail rather than pick token 0.
  FP4SERVE_CHECK(std::isfinite(max_logit), "sampler: logits have no finite maximum ({})", max_logit);
  if (params.temperature <= 0.0 || params.top_k == 1) return {{best, 1.0}};

  std::vector<TokenProbability> kept;
  kept.reserve(logits.size());
  double total = 0;
  for (size_t t = 0; t < logits.size(); ++t) {
    double p = std::exp((static_cast<double>(logits[t]) - max_logit) / params.temperature);
    if (p > 0) {
      kept.push_back({static_cast<int32_t>(t), p});
      total += p;
    }
  }
  // Probabilities are unnormalized from here on; the most likely token has 1.
  if (params.min_p > 0) {
    const double threshold = params.min_p;  // relative to the maximum, which is exactly 1
    std::erase_if(kept, [&](const TokenProbability& c) { return c.probability < threshold; });
  }
  if (params.top_k > 0 && kept.size() > static_cast<size_t>(params.top_k)) {
    std::nth_element(kept.begin(), kept.begin() + params.top_k - 1, kept.end(), more_likely);
    kept.resize(params.top_k);
  }
  if (params.top_p < 1.0) {
    total = 0;
    for (const auto& c : kept) total += c.probability;
    // Pop the most likely tokens off a heap until their mass reaches top_p:
    // O(V + k log V) instead of sorting the whole vocabulary.
    auto less_likely = [](const TokenProbability& a, const TokenProbability& b) { return more_likely(b, a); };
    std::make_heap(kept.begin(), kept.end(), less_likely);
    const double target = params.top_p * total;
    double mass = 0;
    auto end = kept.end();
    while (end != kept.begin() && mass < target) {
      std::pop_heap(kept.begin(), end, less_likely);
      --end;
      mass += end->probability;
    }
    kept.erase(kept.begin(), end);
  }
  std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) { return a.token < b.token; });
  total = 0;
  for (const auto& c : kept) total += c.probability;
  for (auto& c : kept) c.probability /= total;
  return kept;
}

double sampling_uniform(uint64_t seed, uint64_t index) {
  uint64_t bits = mix64(seed ^ mix64(index + 0x632be59bd9b4e019ull));
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

int32_t draw_token(std::span<const TokenProbability> distribution, double u) {
  FP4SERVE_CHECK(!distribution.empty(), "sampler: empty distribution");
  double cumulative = 0;
  for (const auto& c : distribution) {
    cumulative += c.probability;
    if (cumulative > u) return c.token;
  }
  // Rounding left the total a hair below u: the last token is the right pick.
  return distribution.back().token;
}

SampledToken raw_logprobs(std::span<const float> logits, int32_t token, int n) {
  double max_logit = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - max_logit);
  const double log_normalizer = max_logit + std::log(sum);
  auto logprob = [&](int32_t t) { return static_cast<float>(static_cast<double>(logits[t]) - log_normalizer); };

  SampledToken out;
  out.token = token;
  out.logprob = logprob(token);
  n = std::min<int>(n, static_cast<int>(logits.size()));
  if (n > 0) {
    std::vector<int32_t> ids(logits.size());
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
    std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [&](int32_t a, int32_t b) {
      return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
    });
    for (int i = 0; i < n; ++i) out.top_logprobs.push_back({ids[i], logprob(ids[i])});
  }
  return out;
}

void check_sampling_params(const SamplingParams& p) {
  FP4SERVE_CHECK(std::isfinite(p.temperature) && p.temperature >= 0, "temperature {} must be >= 0", p.temperature);
  FP4SERVE_CHECK(p.top_p > 0 && p.top_p <= 1, "top_p {} must be in (0, 1]", p.top_p);
  FP4SERVE_CHECK(p.top_k >= 0, "top_k {} must be >= 0 (0: off)", p.top_k);
  FP4SERVE_CHECK(p.min_p >= 0 && p.min_p <= 1, "min_p {} must be in [0, 1]", p.min_p);
  FP4SERVE_CHECK(std::isfinite(p.presence_penalty) && std::isfinite(p.frequency_penalty),
                 "presence_penalty {} and frequency_penalty {} must be finite", p.presence_penalty, p.frequency_penalty);
  FP4SERVE_CHECK(std::isfinite(p.repetition_penalty) && p.repetition_penalty > 0, "repetition_penalty {} must be > 0",
                 p.repetition_penalty);
}

SequenceSampler::SequenceSampler(SamplingParams params, std::span<const int32_t> prompt) : params_(std::move(params)) {
  check_sampling_params(params_);
  if (params_.repetition_penalty != 1.0) history_.prompt_tokens.insert(prompt.begin(), prompt.end());
}

SampledToken SequenceSampler::sample(std::span<const float> logits) {
  std::vector<TokenProbability> distribution = next_token_distribution(logits, params_, history_);
  int32_t token = draw_token(distribution, sampling_uniform(params_.seed, drawn_++));
  SampledToken out;
  if (params_.top_logprobs >= 0) {
    out = raw_logprobs(logits, token, params_.top_logprobs);
  } else {
    out.token = token;
  }
  ++history_.generated_counts[token];
  return out;
}

std::vector<TokenProbability> SequenceSampler::distribution(std::span<const float> logits,
                                                            std::span<const int32_t> pending) const {
  if (pending.empty()) return next_token_distribution(logits, params_, history_);
  PenaltyHistory history = history_;
  for (int32_t t : pending) ++history.generated_counts[t];
  return next_token_distribution(logits, params_, history);
}

SampledToken SequenceSampler::commit(std::span<const float> logits, int32_t token) {
  SampledToken out;
  if (params_.top_logprobs >= 0) {
    out = raw_logprobs(logits, token, params_.top_logprobs);
  } else {
    out.token = token;
  }
  ++drawn_;
  ++history_.generated_counts[token];
  return out;
}

double SequenceSampler::speculative_uniform() {
  // A second stream, keyed apart from sample()'s by a fixed odd constant.
  return sampling_uniform(mix64(params_.seed ^ 0x9e3779b97f4a7c15ull), speculative_drawn_++);
}

}  // namespace fp4serve::runtime
