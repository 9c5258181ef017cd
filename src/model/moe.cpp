#include "model/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "base/error.h"
#include "model/scratch.h"
#include "kernels/cpu/numeric_formats.h"

namespace fp4serve {
namespace {

using cpu::ActivationQuant;
using cpu::LinearJob;
using cpu::round_bf16;

float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }  // PyTorch's threshold 20
float silu(float x) { return x / (1.0f + std::exp(-x)); }

LinearJob job(const LinearWeight* w, const float* x, int64_t rows, float* y, ActivationQuant act, bool round) {
  LinearJob j;
  j.weight = w;
  j.x = x;
  j.rows = rows;
  j.y = y;
  j.act = act;
  j.round_bf16 = round;
  return j;
}

}  // namespace

void route_token(const float* logits, int64_t experts, int64_t k, const float* bias, const int32_t* hash_experts,
                 float route_scale, int32_t* indices, float* weights) {
  float scores[1024];
  FP4SERVE_CHECK(experts <= 1024, "MoE with {} experts: more than the 1024 supported", experts);
  for (int64_t e = 0; e < experts; ++e) scores[e] = std::sqrt(softplus(logits[e]));
  if (hash_experts != nullptr) {
    std::copy(hash_experts, hash_experts + k, indices);
  } else {
    // top-k of score + bias; ties go to the lower expert id.
    int32_t order[1024];
    std::iota(order, order + experts, 0);
    std::partial_sort(order, order + k, order + experts, [&](int32_t a, int32_t b) {
      const float sa = scores[a] + bias[a], sb = scores[b] + bias[b];
      return sa > sb || (sa == sb && a < b);
    });
    std::copy(order, order + k, indices);
  }
  float sum = 0.0f;
  for (int64_t i = 0; i < k; ++i) sum += (weights[i] = scores[indices[i]]);
  for (int64_t i = 0; i < k; ++i) weights[i] = weights[i] / sum * route_scale;
}

void MoeLayer::forward(const float* x, const int32_t* tokens, int64_t rows, MoeScratch& sc, float* out) const {
  const ModelConfig& c = *config;
  const MoeWeights& w = *weights;
  const int64_t D = c.hidden_size, I = c.moe_intermediate_size, E = c.n_routed_experts, k = c.experts_per_token;
  const float limit = static_cast<float>(c.swiglu_limit);
  auto act = [&](const LinearWeight* lw) {
    return numerics->quantizes_input(lw->encoding) ? ActivationQuant::kFP8Block128 : ActivationQuant::kNone;
  };

  float* logits = grow_scratch(sc.logits, rows * E);
  cpu::linear(job(w.gate, x, rows, logits, ActivationQuant::kNone, false));
  int32_t* selected = grow_scratch(sc.selected, rows * k);
  float* route = grow_scratch(sc.route_weights, rows * k);
  for (int64_t t = 0; t < rows; ++t) {
    const int32_t* hashed = nullptr;
    if (w.hash) {
      FP4SERVE_CHECK(tokens[t] >= 0 && tokens[t] < c.vocab_size, "token id {} outside the vocabulary [0, {})", tokens[t],
                     c.vocab_size);
      hashed = w.tid2eid.data() + static_cast<int64_t>(tokens[t]) * k;
    }
    route_token(logits + t * E, E, k, w.bias.data(), hashed, static_cast<float>(c.routed_scaling_factor), selected + t * k,
                route + t * k);
  }

  // Assignments grouped by expert, ascending id, tokens in order within an expert.
  int32_t* begin = grow_scratch(sc.expert_begin, E + 1);
  std::fill(begin, begin + E + 1, 0);
  for (int64_t i = 0; i < rows * k; ++i) ++begin[selected[i] + 1];
  for (int64_t e = 0; e < E; ++e) begin[e + 1] += begin[e];
  const int64_t assigned = rows * k;
  int32_t* arows = grow_scratch(sc.assignment_rows, assigned);  // assignment -> flat index t*k + slot
  {
    int32_t cursor[1024];
    std::copy(begin, begin + E, cursor);
    for (int64_t i = 0; i < assigned; ++i) arows[cursor[selected[i]]++] = static_cast<int32_t>(i);
  }
  const int64_t total = assigned + rows;  // routed assignments, then the shared expert's rows
  float* gathered = grow_scratch(sc.gathered, assigned * D);
  for (int64_t a = 0; a < assigned; ++a) std::memcpy(gathered + a * D, x + (arows[a] / k) * D, static_cast<size_t>(D) * sizeof(float));
  float* h1 = grow_scratch(sc.h1, total * I);
  float* h3 = grow_scratch(sc.h3, total * I);
  sc.jobs.clear();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t n = begin[e + 1] - begin[e];
    if (n == 0) continue;
    const ExpertWeights& ex = w.experts[static_cast<size_t>(e)];
    sc.jobs.push_back(job(ex.w1, gathered + begin[e] * D, n, h1 + begin[e] * I, act(ex.w1), true));
    sc.jobs.push_back(job(ex.w3, gathered + begin[e] * D, n, h3 + begin[e] * I, act(ex.w3), true));
  }
  sc.jobs.push_back(job(w.shared.w1, x, rows, h1 + assigned * I, act(w.shared.w1), true));
  sc.jobs.push_back(job(w.shared.w3, x, rows, h3 + assigned * I, act(w.shared.w3), true));
  cpu::linear(sc.jobs);

  float* mid = grow_scratch(sc.mid, total * I);
  for (int64_t a = 0; a < total; ++a) {
    const float rw = a < assigned ? route[arows[a]] : 1.0f;
    for (int64_t i = 0; i < I; ++i) {
      float g = h1[a * I + i], u = h3[a * I + i];
      if (limit > 0.0f) {
        u = std::clamp(u, -limit, limit);
        g = std::min(g, limit);
      }
      const float hidden = silu(g) * u;
      mid[a * I + i] = round_bf16(a < assigned ? rw * hidden : hidden);
    }
  }
  float* down = grow_scratch(sc.down, total * D);
  sc.jobs.clear();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t n = begin[e + 1] - begin[e];
    if (n == 0) continue;
    const ExpertWeights& ex = w.experts[static_cast<size_t>(e)];
    sc.jobs.push_back(job(ex.w2, mid + begin[e] * I, n, down + begin[e] * D, act(ex.w2), true));
  }
  sc.jobs.push_back(job(w.shared.w2, mid + assigned * I, rows, down + assigned * D, act(w.shared.w2), true));
  cpu::linear(sc.jobs);

  float* acc = grow_scratch(sc.acc, rows * D);
  std::fill(acc, acc + rows * D, 0.0f);
  for (int64_t a = 0; a < assigned; ++a) {
    float* y = acc + (arows[a] / k) * D;
    for (int64_t d = 0; d < D; ++d) y[d] += down[a * D + d];
  }
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t d = 0; d < D; ++d) out[t * D + d] = round_bf16(acc[t * D + d] + down[(assigned + t) * D + d]);
}

}  // namespace fp4serve
