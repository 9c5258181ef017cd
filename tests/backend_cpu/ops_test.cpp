// The CPU backend's building blocks against naive float64 implementations written from
// DeepSeek's inference/model.py: Sinkhorn (hc_split_sinkhorn), RoPE with YaRN
// (precompute_freqs_cis, apply_rotary_emb), compressor pooling (both window layouts),
// indexer scoring and top-k, MoE routing (Gate).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "backend/cpu/compressor.h"
#include "backend/cpu/indexer.h"
#include "backend/cpu/mhc.h"
#include "backend/cpu/moe.h"
#include "backend/cpu/rope.h"
#include "model/rope.h"

namespace fp4serve::cpu {
namespace {

std::vector<float> randoms(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

TEST(Ops, SinkhornMatchesFloat64) {
  const int hc = 4, iters = 20;
  const double eps = 1e-6;
  for (uint32_t seed = 0; seed < 20; ++seed) {
    const auto mixes = randoms(24, seed, 2.0f), base = randoms(24, seed + 100, 0.5f), scale = randoms(3, seed + 200, 0.3f);
    float pre[4], post[4], comb[16];
    hc_split_sinkhorn(mixes.data(), scale.data(), base.data(), hc, iters, static_cast<float>(eps), pre, post, comb);
    double c[4][4];
    for (int j = 0; j < hc; ++j) {
      EXPECT_NEAR(pre[j], sigmoid(mixes[j] * double(scale[0]) + base[j]) + eps, 1e-6);
      EXPECT_NEAR(post[j], 2 * sigmoid(mixes[4 + j] * double(scale[1]) + base[4 + j]), 1e-6);
      double mx = -1e300, sum = 0;
      for (int k = 0; k < hc; ++k) mx = std::max(mx, c[j][k] = mixes[8 + 4 * j + k] * double(scale[2]) + base[8 + 4 * j + k]);
      for (int k = 0; k < hc; ++k) sum += (c[j][k] = std::exp(c[j][k] - mx));
      for (int k = 0; k < hc; ++k) c[j][k] = c[j][k] / sum + eps;
    }
    auto columns = [&] {
      for (int k = 0; k < hc; ++k) {
        double s = 0;
        for (int j = 0; j < hc; ++j) s += c[j][k];
        for (int j = 0; j < hc; ++j) c[j][k] /= s + eps;
      }
    };
    columns();
    for (int it = 1; it < iters; ++it) {
      for (int j = 0; j < hc; ++j) {
        double s = 0;
        for (int k = 0; k < hc; ++k) s += c[j][k];
        for (int k = 0; k < hc; ++k) c[j][k] /= s + eps;
      }
      columns();
    }
    for (int j = 0; j < hc; ++j)
      for (int k = 0; k < hc; ++k) EXPECT_NEAR(comb[j * hc + k], c[j][k], 2e-6) << seed << " " << j << k;
  }
}

TEST(Ops, RopeYarnFrequenciesAndRotation) {
  // YaRN as DeepSeek's inference/model.py precompute_freqs_cis computes it: base 160000, dim 64, factor 16, original 65536, beta 32/1 -> low 15, high 25.
  const YarnConfig yarn{16.0, 65536, 32.0, 1.0};
  const std::vector<float> freqs = rope_frequencies(64, 160000.0, &yarn), plain_freqs = rope_frequencies(64, 10000.0, nullptr);
  const Rope table(freqs.data(), 64);
  for (int i = 0; i < 32; ++i) {
    const double f = 1.0 / std::pow(160000.0, 2.0 * i / 64.0);
    const double ramp = std::clamp((i - 15.0) / (25.0 - 15.0), 0.0, 1.0);
    const double want = f / 16.0 * ramp + f * (1.0 - ramp);
    EXPECT_NEAR(freqs[i], want, 2e-7 * f) << i;
    EXPECT_NEAR(plain_freqs[i], 1.0 / std::pow(10000.0, 2.0 * i / 64.0), 2e-7) << i;
  }
  EXPECT_FLOAT_EQ(freqs[10], static_cast<float>(1.0 / std::pow(160000.0, 20.0 / 64.0)));  // below low: unchanged
  // Interleaved pairs, forward then inverse, against a float64 rotation.
  for (int64_t pos : {0, 1, 7, 1000, 65535}) {
    auto v = randoms(64, static_cast<uint32_t>(pos + 3));
    for (auto& x : v) x = std::round(x * 128) / 128;  // bf16-exact inputs
    auto r = v;
    table.apply(r.data(), pos, false);
    for (int i = 0; i < 32; ++i) {
      const double angle = static_cast<double>(static_cast<float>(pos) * freqs[i]);
      const double a = v[2 * i], b = v[2 * i + 1];
      EXPECT_NEAR(r[2 * i], a * std::cos(angle) - b * std::sin(angle), 1e-2 * (std::fabs(a) + std::fabs(b)) + 1e-6);
      EXPECT_NEAR(r[2 * i + 1], a * std::sin(angle) + b * std::cos(angle), 1e-2 * (std::fabs(a) + std::fabs(b)) + 1e-6);
    }
    table.apply(r.data(), pos, true);
    for (int i = 0; i < 64; ++i) EXPECT_NEAR(r[i], v[i], 2e-2 * std::fabs(v[i]) + 2e-2);
  }
}

TEST(Ops, CompressorPoolingBothLayouts) {
  for (int64_t ratio : {4, 8}) {
    CompressorParams w;
    w.ratio = ratio;
    w.dim = 128;
    w.overlap = ratio == 4;
    const int64_t coff = w.overlap ? 2 : 1, width = coff * w.dim;
    const std::vector<float> ape = randoms(static_cast<size_t>(ratio * width), 5, 0.1f), norm(128, 1.0f);
    w.ape = ape.data();
    w.norm = norm.data();
    // A slot laid out as model/state_layout.cpp lays it out: kv, score (at -inf), entries.
    const int64_t cells = coff * ratio * width;
    w.state = CompressorStateLayout{0, cells, 2 * cells, 16};
    std::vector<float> slot(static_cast<size_t>(2 * cells + 16 * w.dim), 0.0f);
    std::fill(slot.begin() + cells, slot.begin() + 2 * cells, -INFINITY);
    const std::vector<float> freqs = rope_frequencies(64, 160000.0, nullptr);
    const Rope rope(freqs.data(), 64);
    const CompressorContext ctx{&w, rope, 1e-6f, false, CompressorKind::kMain};
    const int64_t tokens = 3 * ratio;
    const auto a = randoms(static_cast<size_t>(tokens * width), 11), z = randoms(static_cast<size_t>(tokens * width), 12);
    for (int64_t p = 0; p < tokens; ++p) {
      const bool emitted = compressor_ingest(ctx, slot.data(), p, a.data() + p * width, z.data() + p * width);
      ASSERT_EQ(emitted, (p + 1) % ratio == 0);
    }
    ASSERT_EQ(compressed_entries(ratio, tokens - 1), 3);
    const float* entries = slot.data() + w.state.entries;
    for (int64_t e = 0; e < 3; ++e) {
      // float64 pooling from the definition, then the same bf16 / RMSNorm / RoPE steps.
      std::vector<double> pooled(128);
      for (int64_t f = 0; f < 128; ++f) {
        std::vector<std::pair<double, double>> cand;  // (score, value)
        if (w.overlap && e > 0)
          for (int64_t t = (e - 1) * ratio; t < e * ratio; ++t)
            cand.push_back({z[t * width + f] + double(ape[(t % ratio) * width + f]), a[t * width + f]});
        for (int64_t t = e * ratio; t < (e + 1) * ratio; ++t) {
          const int64_t g = w.overlap ? 128 + f : f;
          cand.push_back({z[t * width + g] + double(ape[(t % ratio) * width + g]), a[t * width + g]});
        }
        double mx = -1e300, sum = 0, acc = 0;
        for (auto& c : cand) mx = std::max(mx, c.first);
        for (auto& c : cand) sum += std::exp(c.first - mx);
        for (auto& c : cand) acc += c.second * std::exp(c.first - mx) / sum;
        pooled[f] = acc;
      }
      double ms = 0;
      for (double v : pooled) ms += v * v;
      const double r = 1.0 / std::sqrt(ms / 128 + 1e-6);
      std::vector<float> want(128);
      for (int f = 0; f < 128; ++f) want[f] = static_cast<float>(pooled[f] * r);
      rope.apply(want.data() + 64, e * ratio, false);
      for (int f = 0; f < 128; ++f)
        EXPECT_NEAR(entries[e * 128 + f], want[f], 2e-2 * std::fabs(want[f]) + 1e-2) << ratio << " entry " << e << " f " << f;
    }
  }
}

// index_head_dim == qk_rope_head_dim (both references run it): the indexer's compressor ropes
// every dim of its entries. Checked against pooling, RMSNorm and RoPE computed in float64 here.
TEST(Ops, IndexerCompressorRopingEveryDim) {
  constexpr int64_t kDim = 64, kRatio = 4;
  constexpr double kTheta = 160000.0;
  CompressorParams w;
  w.ratio = kRatio;
  w.dim = kDim;
  w.overlap = true;
  const int64_t width = 2 * kDim;
  const std::vector<float> ape = randoms(static_cast<size_t>(kRatio * width), 21, 0.1f), norm(kDim, 1.0f);
  w.ape = ape.data();
  w.norm = norm.data();
  // A slot laid out as model/state_layout.cpp lays it out: kv, score (at -inf), entries.
  const int64_t cells = 2 * kRatio * width;
  w.state = CompressorStateLayout{0, cells, 2 * cells, 8};
  std::vector<float> slot(static_cast<size_t>(2 * cells + 8 * kDim), 0.0f);
  std::fill(slot.begin() + cells, slot.begin() + 2 * cells, -INFINITY);
  const std::vector<float> freqs = rope_frequencies(kDim, kTheta, nullptr);
  const CompressorContext ctx{&w, Rope(freqs.data(), kDim), 1e-6f, false, CompressorKind::kIndexer};
  const int64_t tokens = 3 * kRatio;
  const auto a = randoms(static_cast<size_t>(tokens * width), 22), z = randoms(static_cast<size_t>(tokens * width), 23);
  for (int64_t p = 0; p < tokens; ++p) compressor_ingest(ctx, slot.data(), p, a.data() + p * width, z.data() + p * width);
  ASSERT_EQ(compressed_entries(kRatio, tokens - 1), 3);
  const float* entries = slot.data() + w.state.entries;
  for (int64_t e = 0; e < 3; ++e) {
    std::vector<double> x(kDim);
    for (int64_t f = 0; f < kDim; ++f) {
      std::vector<std::pair<double, double>> cand;  // (score, value): previous window's first half, this one's second
      if (e > 0)
        for (int64_t t = (e - 1) * kRatio; t < e * kRatio; ++t)
          cand.push_back({z[t * width + f] + double(ape[(t % kRatio) * width + f]), a[t * width + f]});
      for (int64_t t = e * kRatio; t < (e + 1) * kRatio; ++t)
        cand.push_back({z[t * width + kDim + f] + double(ape[(t % kRatio) * width + kDim + f]), a[t * width + kDim + f]});
      double mx = -1e300, sum = 0, acc = 0;
      for (auto& c : cand) mx = std::max(mx, c.first);
      for (auto& c : cand) sum += std::exp(c.first - mx);
      for (auto& c : cand) acc += c.second * std::exp(c.first - mx) / sum;
      x[f] = acc;
    }
    double ms = 0;
    for (double v : x) ms += v * v;
    for (double& v : x) v /= std::sqrt(ms / kDim + 1e-6);
    // RoPE over all kDim dims, interleaved pairs, at the window's first position.
    const double pos = static_cast<double>(e * kRatio);
    for (int64_t i = 0; i < kDim / 2; ++i) {
      const double angle = pos * std::pow(kTheta, -2.0 * static_cast<double>(i) / kDim);
      const double x0 = x[2 * i], x1 = x[2 * i + 1];
      const double want0 = x0 * std::cos(angle) - x1 * std::sin(angle), want1 = x0 * std::sin(angle) + x1 * std::cos(angle);
      EXPECT_NEAR(entries[e * kDim + 2 * i], want0, 2e-2 * std::fabs(want0) + 1e-2) << "entry " << e << " pair " << i;
      EXPECT_NEAR(entries[e * kDim + 2 * i + 1], want1, 2e-2 * std::fabs(want1) + 1e-2) << "entry " << e << " pair " << i;
    }
  }
}

TEST(Ops, IndexerScoresAndTopK) {
  const int64_t heads = 4, dim = 128, count = 9;
  const auto q = randoms(heads * dim, 1, 0.3f), keys = randoms(count * dim, 2, 0.3f), w = randoms(heads, 3);
  std::vector<float> scores(count);
  index_scores(q.data(), w.data(), heads, dim, keys.data(), count, scores.data());
  std::vector<double> want(count);
  for (int64_t c = 0; c < count; ++c) {
    for (int64_t h = 0; h < heads; ++h) {
      double dot = 0;
      for (int64_t i = 0; i < dim; ++i) dot += double(q[h * dim + i]) * keys[c * dim + i];
      want[c] += w[h] * std::max(dot, 0.0);
    }
    EXPECT_NEAR(scores[c], want[c], 2e-2 * std::fabs(want[c]) + 2e-2) << c;
  }
  std::vector<int32_t> top;
  top_k(scores.data(), count, 4, top);
  std::vector<int32_t> order(count);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return scores[a] > scores[b]; });
  EXPECT_EQ(top, std::vector<int32_t>(order.begin(), order.begin() + 4));
  const float tied[] = {1.0f, 3.0f, 3.0f, 2.0f};
  top_k(tied, 4, 2, top);
  EXPECT_EQ(top, (std::vector<int32_t>{1, 2}));
  top_k(tied, 4, 9, top);
  EXPECT_EQ(top.size(), 4u);
}

TEST(Ops, RoutingMatchesFloat64) {
  const int64_t E = 16, k = 6;
  for (uint32_t seed = 0; seed < 10; ++seed) {
    auto logits = randoms(E, seed, 3.0f);
    logits[0] = 25.0f;  // past PyTorch's softplus threshold
    const auto bias = randoms(E, seed + 50, 0.2f);
    int32_t idx[6];
    float wts[6];
    route_token(logits.data(), E, k, bias.data(), nullptr, 2.5f, idx, wts);
    std::vector<double> s(E);
    for (int64_t e = 0; e < E; ++e) s[e] = std::sqrt(logits[e] > 20 ? double(logits[e]) : std::log1p(std::exp(double(logits[e]))));
    std::vector<int32_t> order(E);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return s[a] + bias[a] > s[b] + bias[b]; });
    double sum = 0;
    for (int i = 0; i < k; ++i) sum += s[order[i]];
    for (int i = 0; i < k; ++i) {
      EXPECT_EQ(idx[i], order[i]) << seed;
      EXPECT_NEAR(wts[i], s[order[i]] / sum * 2.5, 1e-5) << seed;  // bias selects only, weights unbiased
    }
    const int32_t hashed[6] = {3, 9, 1, 15, 0, 7};
    route_token(logits.data(), E, k, bias.data(), hashed, 1.5f, idx, wts);
    double hsum = 0;
    for (int i = 0; i < k; ++i) hsum += s[hashed[i]];
    for (int i = 0; i < k; ++i) {
      EXPECT_EQ(idx[i], hashed[i]);
      EXPECT_NEAR(wts[i], s[hashed[i]] / hsum * 1.5, 1e-5);
    }
  }
}

}  // namespace
}  // namespace fp4serve::cpu
