// The sampler against hand-computed tables and a naive float64 reference that
// sorts the whole vocabulary and applies each filter literally.
#include "runtime/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

namespace fp4serve::runtime {
namespace {

// Straightforward reference: full sort, no heaps, no partial selection.
std::map<int32_t, double> reference_distribution(std::vector<double> logits, const SamplingParams& p,
                                                 const std::map<int32_t, int>& generated,
                                                 const std::vector<int32_t>& prompt) {
  const int vocab = static_cast<int>(logits.size());
  for (auto [t, b] : p.logit_bias) logits[t] += b;
  if (p.repetition_penalty != 1.0) {
    std::vector<bool> seen(vocab, false);
    for (int32_t t : prompt) seen[t] = true;
    for (auto [t, c] : generated) seen[t] = true;
    for (int t = 0; t < vocab; ++t) {
      if (seen[t]) logits[t] = logits[t] > 0 ? logits[t] / p.repetition_penalty : logits[t] * p.repetition_penalty;
    }
  }
  for (auto [t, c] : generated) logits[t] -= p.frequency_penalty * c + p.presence_penalty;
  if (p.temperature == 0 || p.top_k == 1) {
    int best = 0;
    for (int t = 1; t < vocab; ++t) {
      if (logits[t] > logits[best]) best = t;
    }
    return {{best, 1.0}};
  }
  std::vector<double> prob(vocab);
  double mx = *std::max_element(logits.begin(), logits.end());
  for (int t = 0; t < vocab; ++t) prob[t] = std::exp((logits[t] - mx) / p.temperature);
  std::vector<int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return prob[a] > prob[b]; });
  std::vector<int32_t> kept;
  for (int32_t t : order) {
    if (prob[t] >= p.min_p * prob[order[0]]) kept.push_back(t);
  }
  if (p.top_k > 0 && static_cast<int>(kept.size()) > p.top_k) kept.resize(p.top_k);
  if (p.top_p < 1.0) {
    double total = 0;
    for (int32_t t : kept) total += prob[t];
    double mass = 0;
    size_t n = 0;
    while (n < kept.size() && mass < p.top_p * total) mass += prob[kept[n++]];
    kept.resize(n);
  }
  double total = 0;
  for (int32_t t : kept) total += prob[t];
  std::map<int32_t, double> out;
  for (int32_t t : kept) out[t] = prob[t] / total;
  return out;
}

std::map<int32_t, double> as_map(const std::vector<TokenProbability>& d) {
  std::map<int32_t, double> m;
  for (auto c : d) m[c.token] = c.probability;
  return m;
}

std::vector<float> logits_of(std::initializer_list<double> values) {
  std::vector<float> v;
  for (double x : values) v.push_back(static_cast<float>(x));
  return v;
}

TEST(Sampler, HandComputedFilters) {
  // Probabilities 1/7, 2/7, 4/7.
  const auto logits = logits_of({0.0, std::log(2.0), std::log(4.0)});
  PenaltyHistory none;
  SamplingParams p;
  auto d = as_map(next_token_distribution(logits, p, none));
  EXPECT_NEAR(d[0], 1.0 / 7, 1e-6);
  EXPECT_NEAR(d[1], 2.0 / 7, 1e-6);
  EXPECT_NEAR(d[2], 4.0 / 7, 1e-6);

  p.top_p = 0.5;  // 4/7 alone reaches it
  d = as_map(next_token_distribution(logits, p, none));
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NEAR(d[2], 1.0, 1e-12);

  p.top_p = 0.6;  // needs 4/7 + 2/7
  d = as_map(next_token_distribution(logits, p, none));
  ASSERT_EQ(d.size(), 2u);
  EXPECT_NEAR(d[1], 1.0 / 3, 1e-6);
  EXPECT_NEAR(d[2], 2.0 / 3, 1e-6);

  p = {};
  p.top_k = 2;
  d = as_map(next_token_distribution(logits, p, none));
  ASSERT_EQ(d.size(), 2u);
  EXPECT_NEAR(d[1], 1.0 / 3, 1e-6);

  p = {};
  p.min_p = 0.3;  // 1/7 < 0.3 * 4/7 <= 2/7
  d = as_map(next_token_distribution(logits, p, none));
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d.count(0), 0u);

  p = {};
  p.temperature = 2.0;  // weights 1, sqrt(2), 2
  d = as_map(next_token_distribution(logits, p, none));
  double z = 1 + std::sqrt(2.0) + 2;
  EXPECT_NEAR(d[0], 1 / z, 1e-6);
  EXPECT_NEAR(d[1], std::sqrt(2.0) / z, 1e-6);
  EXPECT_NEAR(d[2], 2 / z, 1e-6);
}

TEST(Sampler, GreedyTakesTheLowestIdAmongTies) {
  SamplingParams p;
  p.temperature = 0;
  auto d = next_token_distribution(logits_of({1, 5, 3, 5}), p, {});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].token, 1);
}

TEST(Sampler, PenaltiesAndBiasByHand) {
  // All logits 0; token 3 generated twice, token 1 once.
  std::vector<float> logits(5, 0.0f);
  PenaltyHistory h;
  h.generated_counts = {{3, 2}, {1, 1}};
  SamplingParams p;
  p.frequency_penalty = 0.5;
  p.presence_penalty = 1.0;
  p.logit_bias = {{4, 2.0}};
  auto d = as_map(next_token_distribution(logits, p, h));
  // Logits become [0, -1.5, 0, -2, 2].
  double w[] = {1, std::exp(-1.5), 1, std::exp(-2.0), std::exp(2.0)};
  double z = w[0] + w[1] + w[2] + w[3] + w[4];
  for (int t = 0; t < 5; ++t) EXPECT_NEAR(d[t], w[t] / z, 1e-6) << "token " << t;

  // Repetition penalty 2 halves positive and doubles negative logits of seen tokens.
  SamplingParams r;
  r.repetition_penalty = 2.0;
  PenaltyHistory seen;
  seen.prompt_tokens = {0, 1};
  d = as_map(next_token_distribution(logits_of({2, -1, 2}), r, seen));
  double u[] = {std::exp(1.0), std::exp(-2.0), std::exp(2.0)};
  z = u[0] + u[1] + u[2];
  for (int t = 0; t < 3; ++t) EXPECT_NEAR(d[t], u[t] / z, 1e-6) << "token " << t;
}

TEST(Sampler, MatchesNaiveReferenceOnRandomCases) {
  std::mt19937 rng(1234);
  std::normal_distribution<double> normal(0, 3);
  std::uniform_real_distribution<double> unit(0, 1);
  for (int trial = 0; trial < 300; ++trial) {
    const int vocab = 1 + static_cast<int>(rng() % 300);
    std::vector<double> raw(vocab);
    for (auto& x : raw) x = static_cast<float>(normal(rng));  // representable as float
    SamplingParams p;
    p.temperature = trial % 7 == 0 ? 0.0 : 0.1 + 2 * unit(rng);
    p.top_p = trial % 3 == 0 ? 1.0 : 0.05 + 0.95 * unit(rng);
    p.top_k = trial % 4 == 0 ? 0 : 1 + static_cast<int>(rng() % 40);
    p.min_p = trial % 5 == 0 ? 0.0 : 0.3 * unit(rng);
    p.frequency_penalty = trial % 2 ? 0.0 : 2 * unit(rng) - 1;
    p.presence_penalty = trial % 3 ? 0.0 : 2 * unit(rng) - 1;
    p.repetition_penalty = trial % 6 ? 1.0 : 1 + unit(rng);
    std::map<int32_t, int> generated;
    std::vector<int32_t> prompt;
    PenaltyHistory h;
    for (int i = 0; i < 10; ++i) {
      int32_t t = static_cast<int32_t>(rng() % vocab);
      ++generated[t];
      ++h.generated_counts[t];
      int32_t q = static_cast<int32_t>(rng() % vocab);
      prompt.push_back(q);
      if (p.repetition_penalty != 1.0) h.prompt_tokens.insert(q);
    }
    if (trial % 8 == 0) p.logit_bias = {{static_cast<int32_t>(rng() % vocab), 5.0}};
    std::vector<float> logits(raw.begin(), raw.end());
    auto got = as_map(next_token_distribution(logits, p, h));
    // Penalties are applied in float by the sampler: compare against the
    // reference run on the same float-rounded penalized inputs within 1e-5.
    auto want = reference_distribution(raw, p, generated, prompt);
    ASSERT_EQ(got.size(), want.size()) << "trial " << trial;
    for (auto [t, prob] : want) {
      ASSERT_TRUE(got.count(t)) << "trial " << trial << " token " << t;
      EXPECT_NEAR(got[t], prob, 1e-5) << "trial " << trial << " token " << t;
    }
  }
}

TEST(Sampler, DrawIsTheInverseCdfInTokenOrder) {
  std::vector<TokenProbability> d = {{3, 0.25}, {7, 0.5}, {9, 0.25}};
  EXPECT_EQ(draw_token(d, 0.0), 3);
  EXPECT_EQ(draw_token(d, 0.2499), 3);
  EXPECT_EQ(draw_token(d, 0.25), 7);
  EXPECT_EQ(draw_token(d, 0.7499), 7);
  EXPECT_EQ(draw_token(d, 0.75), 9);
  EXPECT_EQ(draw_token(d, 0.9999999), 9);
}

TEST(Sampler, UniformsAreUniformAndSeedDependent) {
  // 16 equal bins over 64k draws: each within 5 sigma of 4096.
  std::vector<int> bins(16, 0);
  for (uint64_t i = 0; i < 65536; ++i) {
    double u = sampling_uniform(42, i);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    ++bins[static_cast<int>(u * 16)];
  }
  for (int b : bins) EXPECT_NEAR(b, 4096, 5 * std::sqrt(4096.0 * 15 / 16));
  EXPECT_NE(sampling_uniform(1, 0), sampling_uniform(2, 0));
  EXPECT_EQ(sampling_uniform(7, 3), sampling_uniform(7, 3));
}

TEST(Sampler, EmpiricalFrequenciesMatchTheDistribution) {
  const auto logits = logits_of({0.0, std::log(2.0), std::log(4.0), std::log(1.0)});  // 1/8 2/8 4/8 1/8
  std::vector<int> counts(4, 0);
  const int draws = 40000;
  for (int seed = 0; seed < draws; ++seed) {
    SamplingParams p;
    p.seed = static_cast<uint64_t>(seed);
    SequenceSampler s(p, {});
    ++counts[s.sample(logits).token];
  }
  const double expected[] = {1.0 / 8, 2.0 / 8, 4.0 / 8, 1.0 / 8};
  for (int t = 0; t < 4; ++t) {
    double sigma = std::sqrt(draws * expected[t] * (1 - expected[t]));
    EXPECT_NEAR(counts[t], draws * expected[t], 5 * sigma) << "token " << t;
  }
}

TEST(Sampler, SameSeedSameTokens) {
  std::mt19937 rng(5);
  std::vector<std::vector<float>> steps(50, std::vector<float>(100));
  for (auto& s : steps) {
    for (auto& x : s) x = static_cast<float>(rng() % 1000) / 300.0f;
  }
  auto run = [&](uint64_t seed) {
    SamplingParams p;
    p.seed = seed;
    p.top_p = 0.9;
    SequenceSampler s(p, {});
    std::vector<int32_t> out;
    for (auto& l : steps) out.push_back(s.sample(l).token);
    return out;
  };
  EXPECT_EQ(run(11), run(11));
  EXPECT_NE(run(11), run(12));
}

TEST(Sampler, RawLogprobsAgainstFloat64LogSoftmax) {
  std::vector<float> logits = logits_of({1.5, -2.0, 3.25, 3.25, 0.0});
  double z = 0;
  for (float l : logits) z += std::exp(static_cast<double>(l));
  auto lp = [&](int t) { return static_cast<double>(logits[t]) - std::log(z); };
  SampledToken s = raw_logprobs(logits, 1, 3);
  EXPECT_NEAR(s.logprob, lp(1), 1e-6);
  ASSERT_EQ(s.top_logprobs.size(), 3u);
  EXPECT_EQ(s.top_logprobs[0].token, 2);  // tie with 3: lower id first
  EXPECT_EQ(s.top_logprobs[1].token, 3);
  EXPECT_EQ(s.top_logprobs[2].token, 0);
  for (auto& t : s.top_logprobs) EXPECT_NEAR(t.logprob, lp(t.token), 1e-6);
}

}  // namespace
}  // namespace fp4serve::runtime
