#include "runtime/speculative_sampling.h"

#include <algorithm>

#include "base/error.h"

namespace fp4serve::runtime {
namespace {

double probability_of(std::span<const TokenProbability> d, int32_t token) {
  // Distributions are in ascending token order.
  auto it = std::lower_bound(d.begin(), d.end(), token, [](const TokenProbability& a, int32_t t) { return a.token < t; });
  return it != d.end() && it->token == token ? it->probability : 0.0;
}

// normalize(max(0, p - q)); p itself where that leaves nothing (p <= q everywhere means p == q,
// and then a rejection cannot happen).
std::vector<TokenProbability> residual(std::span<const TokenProbability> p, std::span<const TokenProbability> q) {
  std::vector<TokenProbability> r;
  double total = 0;
  for (const TokenProbability& t : p) {
    const double v = t.probability - probability_of(q, t.token);
    if (v > 0) {
      r.push_back({t.token, v});
      total += v;
    }
  }
  if (total <= 0) return {p.begin(), p.end()};
  for (TokenProbability& t : r) t.probability /= total;
  return r;
}

}  // namespace

DraftedToken draw_draft(SequenceSampler& sampler, std::span<const float> logits, std::span<const int32_t> pending) {
  DraftedToken d;
  d.q = sampler.distribution(logits, pending);
  d.token = draw_token(d.q, sampler.speculative_uniform());
  return d;
}

Verification verify_drafts(SequenceSampler& sampler, std::span<const float> target_logits, int64_t vocab,
                           std::span<const DraftedToken> drafts) {
  const size_t V = static_cast<size_t>(vocab);
  FP4SERVE_CHECK(target_logits.size() == (drafts.size() + 1) * V, "verify: {} logits for {} drafts of a {}-token vocabulary",
                 target_logits.size(), drafts.size(), vocab);
  Verification out;
  for (size_t k = 0; k <= drafts.size(); ++k) {
    const std::span<const float> row = target_logits.subspan(k * V, V);
    // Earlier accepted drafts are committed already, so the history is the target's.
    const std::vector<TokenProbability> p = sampler.distribution(row, {});
    if (k == drafts.size()) {
      out.emitted.push_back(sampler.commit(row, draw_token(p, sampler.speculative_uniform())));
      break;
    }
    const DraftedToken& d = drafts[k];
    const double px = probability_of(p, d.token), qx = probability_of(d.q, d.token);
    FP4SERVE_CHECK(qx > 0, "verify: drafted token {} has probability 0 in its own distribution", d.token);
    if (sampler.speculative_uniform() < std::min(1.0, px / qx)) {
      out.emitted.push_back(sampler.commit(row, d.token));
      ++out.accepted;
      continue;
    }
    out.emitted.push_back(sampler.commit(row, draw_token(residual(p, d.q), sampler.speculative_uniform())));
    break;
  }
  return out;
}

}  // namespace fp4serve::runtime
