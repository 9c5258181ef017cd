// The DSpark draft forward (src/model/dspark_draft.cpp on the CPU backend) against an
// independent float64 implementation of DeepSeek's DSparkBlock / DSparkAttention /
// forward_spec written here from the published description (DeepSeek's inference/model.py of
// DeepSeek-V4-Flash-0731; the DSpark paper, deepseek-ai/DeepSpec DSpark_paper.pdf, section 3) on a
// tiny BF16 model: the target taps, context rings, the block's base logits and pre-norm hidden,
// the Markov bias and the confidence logit. The model rounds activations to bf16 where the
// reference stores bf16 tensors; float64 does not, hence the tolerances.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "cpu_model.h"
#include "formats/number_formats.h"
#include "formats/weight_dequantization.h"
#include "model_test_checkpoints.h"

namespace fp4serve {
namespace {

using Vec = std::vector<double>;

// The checkpoint's tensors as float64, by canonical name.
class Weights {
 public:
  explicit Weights(const Checkpoint& c) : c_(c) {}
  const Vec& linear(const std::string& name) {
    auto it = cache_.find(name);
    if (it != cache_.end()) return it->second;
    const std::vector<float> f = dequantize_to_f32(c_.linears.at(name));
    return cache_[name] = Vec(f.begin(), f.end());
  }
  const Vec& tensor(const std::string& name) {
    auto it = cache_.find(name);
    if (it != cache_.end()) return it->second;
    const TensorView& t = c_.tensors.at(name);
    Vec v(static_cast<size_t>(t.numel()));
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = t.dtype == DType::F32 ? t.as<float>()[i] : decode_bf16(t.as<uint16_t>()[i]);
    return cache_[name] = v;
  }

 private:
  const Checkpoint& c_;
  std::map<std::string, Vec> cache_;
};

// y[n] = sum_k W[n, k] x[k], W [N, K] row-major.
Vec matvec(const Vec& W, const double* x, int64_t N, int64_t K) {
  Vec y(static_cast<size_t>(N), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) y[n] += W[n * K + k] * x[k];
  return y;
}

Vec rms_norm(const double* x, int64_t n, const Vec* w, double eps) {
  double ms = 0;
  for (int64_t i = 0; i < n; ++i) ms += x[i] * x[i];
  const double r = 1.0 / std::sqrt(ms / n + eps);
  Vec y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * r * (w ? (*w)[i] : 1.0);
  return y;
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Interleaved-pair RoPE on the last rd values of v at `pos`, plain rope_theta (draft layers
// have compress ratio 0: no YaRN); inverse rotates back.
void rope(double* v, int64_t hd, int64_t rd, double theta, int64_t pos, bool inverse) {
  for (int64_t i = 0; i < rd / 2; ++i) {
    const double freq = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(rd));
    const double a = static_cast<double>(pos) * freq * (inverse ? -1.0 : 1.0);
    double* x = v + hd - rd + 2 * i;
    const double x0 = x[0], x1 = x[1];
    x[0] = x0 * std::cos(a) - x1 * std::sin(a);
    x[1] = x0 * std::sin(a) + x1 * std::cos(a);
  }
}

class Reference {
 public:
  Reference(const ModelConfig& c, Weights& w) : c_(c), w_(w) {}

  // main_x = main_norm(main_proj(taps)); then stage s's kv = kv_norm(wkv(main_x)), RoPE'd at pos.
  Vec context_kv(int64_t s, const std::vector<float>& taps_row, int64_t pos) {
    const int64_t D = c_.hidden_size, T = static_cast<int64_t>(taps_row.size());
    const Vec t(taps_row.begin(), taps_row.end());
    const Vec proj = matvec(w_.linear("mtp.0.main_proj"), t.data(), D, T);
    const Vec main_x = rms_norm(proj.data(), D, &w_.tensor("mtp.0.main_norm.weight"), c_.rms_norm_eps);
    return kv_of(s, main_x.data(), pos);
  }

  // The block of one sequence: X [B, hc, D] through every stage; returns the pre-norm hidden
  // [B, D] and the base logits [B, V]. ring[s] holds the context keys, oldest first.
  void block(const std::vector<int32_t>& tokens, int64_t first_pos, const std::vector<std::vector<Vec>>& ring, Vec& hidden,
             Vec& logits) {
    const int64_t B = static_cast<int64_t>(tokens.size()), D = c_.hidden_size, hc = c_.hc_mult, V = c_.vocab_size;
    const Vec& embed = w_.tensor("embed.weight");
    std::vector<Vec> X(static_cast<size_t>(B), Vec(static_cast<size_t>(hc * D)));
    for (int64_t t = 0; t < B; ++t)
      for (int64_t j = 0; j < hc; ++j)
        for (int64_t d = 0; d < D; ++d) X[t][j * D + d] = embed[tokens[t] * D + d];
    for (int64_t s = 0; s < c_.draft.num_stages; ++s) {
      const std::string p = "mtp." + std::to_string(s) + ".";
      // Attention sub-block.
      std::vector<Vec> post(B), comb(B), a(B);
      for (int64_t t = 0; t < B; ++t) {
        Vec pre;
        hc_split(p + "hc_attn_", X[t], pre, post[t], comb[t]);
        a[t] = collapse(X[t], pre);
        a[t] = rms_norm(a[t].data(), D, &w_.tensor(p + "attn_norm.weight"), c_.rms_norm_eps);
      }
      const std::vector<Vec> att = attention(s, a, first_pos, ring[static_cast<size_t>(s)]);
      for (int64_t t = 0; t < B; ++t) X[t] = hc_post(X[t], att[t], post[t], comb[t]);
      // MoE sub-block.
      for (int64_t t = 0; t < B; ++t) {
        Vec pre, po, co;
        hc_split(p + "hc_ffn_", X[t], pre, po, co);
        Vec f = collapse(X[t], pre);
        f = rms_norm(f.data(), D, &w_.tensor(p + "ffn_norm.weight"), c_.rms_norm_eps);
        X[t] = hc_post(X[t], moe(p, f), po, co);
      }
    }
    const std::string last = "mtp." + std::to_string(c_.draft.num_stages - 1) + ".";
    hidden.assign(static_cast<size_t>(B * D), 0.0);
    logits.assign(static_cast<size_t>(B * V), 0.0);
    for (int64_t t = 0; t < B; ++t) {
      const Vec mixes = mhc_mixes(last + "hc_head_fn", X[t], hc);
      const Vec& scale = w_.tensor(last + "hc_head_scale");
      const Vec& base = w_.tensor(last + "hc_head_base");
      Vec pre(static_cast<size_t>(hc));
      for (int64_t j = 0; j < hc; ++j) pre[j] = sigmoid(mixes[j] * scale[0] + base[j]) + c_.hc_eps;
      const Vec h = collapse(X[t], pre);
      std::copy(h.begin(), h.end(), hidden.begin() + t * D);
      const Vec n = rms_norm(h.data(), D, &w_.tensor(last + "norm.weight"), c_.rms_norm_eps);
      const Vec l = matvec(w_.linear("head"), n.data(), V, D);
      std::copy(l.begin(), l.end(), logits.begin() + t * V);
    }
  }

  Vec markov_embedding(int32_t prev) {
    const int64_t r = c_.draft.markov_rank;
    const Vec& w1 = w_.tensor(last() + "markov_head.markov_w1.weight");
    return Vec(w1.begin() + prev * r, w1.begin() + (prev + 1) * r);
  }
  Vec markov_bias(int32_t prev) {
    const Vec m = markov_embedding(prev);
    return matvec(w_.linear(last() + "markov_head.markov_w2"), m.data(), c_.vocab_size, c_.draft.markov_rank);
  }
  double confidence(const double* hidden, int32_t prev) {
    const int64_t D = c_.hidden_size;
    Vec in(hidden, hidden + D);
    const Vec m = markov_embedding(prev);
    in.insert(in.end(), m.begin(), m.end());
    return matvec(w_.linear(last() + "confidence_head.proj"), in.data(), 1, static_cast<int64_t>(in.size()))[0];
  }

 private:
  std::string last() const { return "mtp." + std::to_string(c_.draft.num_stages - 1) + "."; }

  Vec kv_of(int64_t s, const double* x, int64_t pos) {
    const std::string p = "mtp." + std::to_string(s) + ".attn.";
    const int64_t D = c_.hidden_size, hd = c_.head_dim;
    Vec kv = matvec(w_.linear(p + "wkv"), x, hd, D);
    kv = rms_norm(kv.data(), hd, &w_.tensor(p + "kv_norm.weight"), c_.rms_norm_eps);
    rope(kv.data(), hd, c_.rope_head_dim, c_.rope_theta, pos, false);
    return kv;
  }

  Vec mhc_mixes(const std::string& fn, const Vec& x, int64_t m) {
    const int64_t n = static_cast<int64_t>(x.size());
    Vec mixes = matvec(w_.tensor(fn), x.data(), m, n);
    double ms = 0;
    for (double v : x) ms += v * v;
    const double r = 1.0 / std::sqrt(ms / n + c_.rms_norm_eps);
    for (double& v : mixes) v *= r;
    return mixes;
  }

  // hc_split_sinkhorn of DeepSeek's model.py.
  void hc_split(const std::string& site, const Vec& x, Vec& pre, Vec& post, Vec& comb) {
    const int64_t hc = c_.hc_mult;
    const Vec mixes = mhc_mixes(site + "fn", x, (2 + hc) * hc);
    const Vec& scale = w_.tensor(site + "scale");
    const Vec& base = w_.tensor(site + "base");
    const double eps = c_.hc_eps;
    pre.assign(hc, 0);
    post.assign(hc, 0);
    comb.assign(hc * hc, 0);
    for (int64_t j = 0; j < hc; ++j) {
      pre[j] = sigmoid(mixes[j] * scale[0] + base[j]) + eps;
      post[j] = 2.0 * sigmoid(mixes[hc + j] * scale[1] + base[hc + j]);
    }
    for (int64_t j = 0; j < hc; ++j) {
      double mx = -INFINITY;
      for (int64_t k = 0; k < hc; ++k) {
        comb[j * hc + k] = mixes[2 * hc + j * hc + k] * scale[2] + base[2 * hc + j * hc + k];
        mx = std::max(mx, comb[j * hc + k]);
      }
      double sum = 0;
      for (int64_t k = 0; k < hc; ++k) sum += comb[j * hc + k] = std::exp(comb[j * hc + k] - mx);
      for (int64_t k = 0; k < hc; ++k) comb[j * hc + k] = comb[j * hc + k] / sum + eps;
    }
    auto normalize_columns = [&] {
      for (int64_t k = 0; k < hc; ++k) {
        double sum = 0;
        for (int64_t j = 0; j < hc; ++j) sum += comb[j * hc + k];
        for (int64_t j = 0; j < hc; ++j) comb[j * hc + k] /= sum + eps;
      }
    };
    normalize_columns();
    for (int64_t it = 1; it < c_.hc_sinkhorn_iters; ++it) {
      for (int64_t j = 0; j < hc; ++j) {
        double sum = 0;
        for (int64_t k = 0; k < hc; ++k) sum += comb[j * hc + k];
        for (int64_t k = 0; k < hc; ++k) comb[j * hc + k] /= sum + eps;
      }
      normalize_columns();
    }
  }

  Vec collapse(const Vec& X, const Vec& pre) {
    const int64_t D = c_.hidden_size;
    Vec u(static_cast<size_t>(D), 0.0);
    for (size_t j = 0; j < pre.size(); ++j)
      for (int64_t d = 0; d < D; ++d) u[d] += pre[j] * X[j * D + d];
    return u;
  }

  // X[k] = post[k] y + sum_j comb[j][k] X[j].
  Vec hc_post(const Vec& X, const Vec& y, const Vec& post, const Vec& comb) {
    const int64_t D = c_.hidden_size, hc = c_.hc_mult;
    Vec out(X.size(), 0.0);
    for (int64_t k = 0; k < hc; ++k)
      for (int64_t d = 0; d < D; ++d) {
        double v = post[k] * y[d];
        for (int64_t j = 0; j < hc; ++j) v += comb[j * hc + k] * X[j * D + d];
        out[k * D + d] = v;
      }
    return out;
  }

  // DSparkAttention: every query sees the ring and the whole block (no causal mask), a sink.
  std::vector<Vec> attention(int64_t s, const std::vector<Vec>& x, int64_t first_pos, const std::vector<Vec>& ring) {
    const std::string p = "mtp." + std::to_string(s) + ".attn.";
    const int64_t B = static_cast<int64_t>(x.size()), D = c_.hidden_size, H = c_.num_heads, hd = c_.head_dim;
    const int64_t ql = c_.q_lora_rank, G = c_.o_groups, R = c_.o_lora_rank, rd = c_.rope_head_dim;
    std::vector<Vec> keys = ring;
    std::vector<Vec> q(B);
    for (int64_t t = 0; t < B; ++t) {
      keys.push_back(kv_of(s, x[t].data(), first_pos + t));
      Vec qa = matvec(w_.linear(p + "wq_a"), x[t].data(), ql, D);
      qa = rms_norm(qa.data(), ql, &w_.tensor(p + "q_norm.weight"), c_.rms_norm_eps);
      q[t] = matvec(w_.linear(p + "wq_b"), qa.data(), H * hd, ql);
      for (int64_t h = 0; h < H; ++h) {
        const Vec n = rms_norm(q[t].data() + h * hd, hd, nullptr, c_.rms_norm_eps);
        std::copy(n.begin(), n.end(), q[t].begin() + h * hd);
        rope(q[t].data() + h * hd, hd, rd, c_.rope_theta, first_pos + t, false);
      }
    }
    const Vec& sink = w_.tensor(p + "attn_sink");
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    std::vector<Vec> out(B);
    for (int64_t t = 0; t < B; ++t) {
      Vec o(static_cast<size_t>(H * hd), 0.0);
      for (int64_t h = 0; h < H; ++h) {
        Vec sc(keys.size());
        double m = -INFINITY;
        for (size_t j = 0; j < keys.size(); ++j) {
          double dot = 0;
          for (int64_t i = 0; i < hd; ++i) dot += q[t][h * hd + i] * keys[j][i];
          sc[j] = dot * scale;
          m = std::max(m, sc[j]);
        }
        double den = std::exp(sink[h] - m);
        for (size_t j = 0; j < keys.size(); ++j) den += std::exp(sc[j] - m);
        for (size_t j = 0; j < keys.size(); ++j)
          for (int64_t i = 0; i < hd; ++i) o[h * hd + i] += std::exp(sc[j] - m) / den * keys[j][i];
        rope(o.data() + h * hd, hd, rd, c_.rope_theta, first_pos + t, true);
      }
      // Grouped output projection: wo_a [G*R, H*hd/G] per group, then wo_b.
      const Vec& wo_a = w_.linear(p + "wo_a");
      const int64_t gin = H * hd / G;
      Vec z(static_cast<size_t>(G * R), 0.0);
      for (int64_t g = 0; g < G; ++g)
        for (int64_t r = 0; r < R; ++r)
          for (int64_t i = 0; i < gin; ++i) z[g * R + r] += wo_a[(g * R + r) * gin + i] * o[g * gin + i];
      out[t] = matvec(w_.linear(p + "wo_b"), z.data(), D, G * R);
    }
    return out;
  }

  Vec moe(const std::string& p, const Vec& x) {
    const int64_t D = c_.hidden_size, E = c_.n_routed_experts, k = c_.experts_per_token, I = c_.moe_intermediate_size;
    const double L = c_.swiglu_limit;
    const Vec logits = matvec(w_.linear(p + "ffn.gate"), x.data(), E, D);
    const Vec& bias = w_.tensor(p + "ffn.gate.bias");
    Vec score(E);
    for (int64_t e = 0; e < E; ++e) score[e] = std::sqrt(std::log1p(std::exp(logits[e])));
    std::vector<int64_t> order(E);
    for (int64_t e = 0; e < E; ++e) order[e] = e;
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score[a] + bias[a] > score[b] + bias[b]; });
    double total = 0;
    for (int64_t i = 0; i < k; ++i) total += score[order[i]];
    auto expert = [&](const std::string& q, double weight) {
      const Vec g = matvec(w_.linear(q + "w1"), x.data(), I, D);
      const Vec u = matvec(w_.linear(q + "w3"), x.data(), I, D);
      Vec h(I);
      for (int64_t i = 0; i < I; ++i) {
        const double gi = L > 0 ? std::min(g[i], L) : g[i];
        const double ui = L > 0 ? std::clamp(u[i], -L, L) : u[i];
        h[i] = gi / (1.0 + std::exp(-gi)) * ui * weight;
      }
      return matvec(w_.linear(q + "w2"), h.data(), D, I);
    };
    Vec out = expert(p + "ffn.shared_experts.", 1.0);
    for (int64_t i = 0; i < k; ++i) {
      const int64_t e = order[i];
      const Vec y = expert(p + "ffn.experts." + std::to_string(e) + ".", score[e] / total * c_.routed_scaling_factor);
      for (int64_t d = 0; d < D; ++d) out[d] += y[d];
    }
    return out;
  }

  const ModelConfig& c_;
  Weights& w_;
};

double relative_l2(const std::vector<float>& got, size_t at, const Vec& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = got[at + i] - want[i];
    num += d * d;
    den += want[i] * want[i];
  }
  return std::sqrt(num / den);
}

TEST(DsparkDraft, MatchesFloat64ReferenceOfTheSpec) {
  const ModelConfig config = with_draft(testing::tiny_config({0, 4, 0}, 1, 0), DraftKind::kDSpark);
  const Checkpoint ckpt = testing::random_checkpoint(config, OutputLayout::kBF16, 1601);
  testing::CpuModel m(ckpt);
  Model& model = m.model;
  ASSERT_NE(model.dspark(), nullptr);
  const int64_t D = config.hidden_size, V = config.vocab_size, B = config.draft.block_size, hc = config.hc_mult;
  const int64_t W = config.draft.sliding_window, taps = static_cast<int64_t>(config.draft.target_layer_ids.size());
  ASSERT_LT(W, 11) << "the longer prompt must wrap the context ring";

  // Two sequences in one prefill step (11 and 6 tokens).
  const std::vector<int32_t> p1 = {5, 17, 99, 3, 42, 7, 200, 31, 8, 150, 64}, p2 = {9, 1, 77, 123, 45, 6};
  model.create_sequence(1);
  model.create_sequence(2);
  const StepItem items[] = {{1, 0, p1, LogitsMode::kLast}, {2, 0, p2, LogitsMode::kLast}};
  std::vector<float> logits, streams;
  model.forward(items, logits, &streams);
  const std::vector<float> tap_values = model.dspark()->read_taps();
  ASSERT_EQ(tap_values.size(), static_cast<size_t>(17 * taps * D));
  // The last target layer's tap is the plain hc-mean of the final streams (bf16-rounded).
  for (int64_t t = 0; t < 17; ++t)
    for (int64_t d = 0; d < D; ++d) {
      double mean = 0;
      for (int64_t j = 0; j < hc; ++j) mean += streams[(t * hc + j) * D + d];
      mean /= static_cast<double>(hc);
      ASSERT_NEAR(tap_values[(t * taps + taps - 1) * D + d], mean, std::abs(mean) * 0.004 + 1e-6) << "row " << t << " dim " << d;
    }

  const DraftContextItem context[] = {{1, 0, 0, 11}, {2, 0, 11, 6}};
  model.dspark_context(context);
  const DraftBlockItem blocks[] = {{1, 11, 212}, {2, 6, 4}};
  std::vector<float> draft_logits, hidden;
  model.dspark_draft(blocks, draft_logits, hidden);
  ASSERT_EQ(draft_logits.size(), static_cast<size_t>(2 * B * V));
  ASSERT_EQ(hidden.size(), static_cast<size_t>(2 * B * D));

  Weights weights(ckpt);
  Reference ref(config, weights);
  const int64_t lengths[] = {11, 6}, first_row[] = {0, 11};
  for (int64_t i = 0; i < 2; ++i) {
    std::vector<std::vector<Vec>> ring(static_cast<size_t>(config.draft.num_stages));
    for (int64_t s = 0; s < config.draft.num_stages; ++s)
      for (int64_t pos = std::max<int64_t>(0, lengths[i] - W); pos < lengths[i]; ++pos) {
        const size_t at = static_cast<size_t>((first_row[i] + pos) * taps * D);
        const std::vector<float> row(tap_values.begin() + at, tap_values.begin() + at + taps * D);
        ring[s].push_back(ref.context_kv(s, row, pos));
      }
    std::vector<int32_t> tokens(static_cast<size_t>(B), static_cast<int32_t>(config.draft.noise_token_id));
    tokens[0] = blocks[i].anchor;
    Vec want_hidden, want_logits;
    ref.block(tokens, lengths[i], ring, want_hidden, want_logits);
    EXPECT_LT(relative_l2(hidden, static_cast<size_t>(i * B * D), want_hidden), 0.02) << "sequence " << i;
    EXPECT_LT(relative_l2(draft_logits, static_cast<size_t>(i * B * V), want_logits), 0.02) << "sequence " << i;
    int agree = 0;
    for (int64_t k = 0; k < B; ++k) {
      const auto* got = draft_logits.data() + (i * B + k) * V;
      const auto want = want_logits.begin() + k * V;
      agree += std::max_element(got, got + V) - got == std::max_element(want, want + V) - want;
    }
    EXPECT_GE(agree, B - 1) << "sequence " << i << ": argmax of the draft positions";
  }

  // The Markov bias and the confidence head.
  const std::vector<int32_t> prev = {212, 0, 255};
  std::vector<float> bias;
  model.dspark()->markov_bias(prev, bias);
  ASSERT_EQ(bias.size(), prev.size() * static_cast<size_t>(V));
  for (size_t i = 0; i < prev.size(); ++i)
    EXPECT_LT(relative_l2(bias, i * static_cast<size_t>(V), ref.markov_bias(prev[i])), 1e-5) << "token " << prev[i];
  const Vec h(hidden.begin(), hidden.begin() + D);
  const double want_conf = ref.confidence(h.data(), 212);
  EXPECT_NEAR(model.dspark()->confidence_logit(std::span<const float>(hidden.data(), D), 212), want_conf,
              1e-4 * (1 + std::abs(want_conf)));
}

}  // namespace
}  // namespace fp4serve
