#include "backend/cpu/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "backend/cpu/linear.h"
#include "formats/number_formats.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/scratch.h"
#include "base/error.h"

namespace fp4serve::cpu {
namespace {

float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }  // PyTorch's threshold 20
float silu(float x) { return x / (1.0f + std::exp(-x)); }

// Columns of one unit of the element-wise loops.
constexpr int64_t kColumnsPerUnit = 512;

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

void moe(const MoeParams& p, MoeScratch& sc, ActivationObserver* observer) {
  const int64_t D = p.dim, I = p.intermediate, E = p.experts, k = p.experts_per_token, rows = p.rows;
  const int64_t Is = p.shared_intermediate > 0 ? p.shared_intermediate : I;
  const float limit = p.swiglu_limit;
  const float* x = p.x;
  float* out = p.out;
  auto act = [&](const LinearWeight* lw) {
    return p.numerics.quantizes_input(lw->encoding) ? ActivationQuant::kFP8Block128 : ActivationQuant::kNone;
  };

  float* logits = grow_scratch(sc.logits, rows * E);
  linear(linear_job(p.gate, x, rows, logits, ActivationQuant::kNone, false), observer);
  int32_t* selected = grow_scratch(sc.selected, rows * k);
  float* route = grow_scratch(sc.route_weights, rows * k);
  // Checked here, not on the pool's threads (route_token checks too, for direct callers).
  FP4SERVE_CHECK(E <= 1024, "MoE with {} experts: more than the 1024 supported", E);
  FP4SERVE_CHECK(static_cast<int64_t>(p.routed.size()) == E, "MoE: {} routed experts given, {} configured", p.routed.size(), E);
  FP4SERVE_CHECK(p.absent.empty() || static_cast<int64_t>(p.absent.size()) == E, "MoE: {} absent-expert marks for {} experts",
                 p.absent.size(), E);
  parallel_units(rows, rows * E * 32, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int32_t* hashed = p.tid2eid ? p.tid2eid + static_cast<int64_t>(p.tokens[t]) * k : nullptr;
      route_token(logits + t * E, E, k, p.bias, hashed, p.route_scale, selected + t * k, route + t * k);
    }
  });

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
  // An expert with one row reads it in place (every expert of a decode step): the jobs
  // then share one quantized copy of the input. Several rows are gathered.
  float* gathered = grow_scratch(sc.gathered, assigned * D);
  auto expert_input = [&](int64_t e) -> const float* {
    if (begin[e + 1] - begin[e] == 1) return x + (arows[begin[e]] / k) * D;
    return gathered + begin[e] * D;
  };
  for (int64_t e = 0; e < E; ++e)
    if (begin[e + 1] - begin[e] > 1)
      for (int64_t a = begin[e]; a < begin[e + 1]; ++a)
        std::memcpy(gathered + a * D, x + (arows[a] / k) * D, static_cast<size_t>(D) * sizeof(float));
  // Hidden rows: the routed assignments' [assigned, I], then the shared expert's [rows, Is].
  const int64_t hidden = assigned * I + rows * Is;
  float* h1 = grow_scratch(sc.h1, hidden);
  float* h3 = grow_scratch(sc.h3, hidden);
  sc.jobs.clear();
  // Experts another rank holds add exactly 0: their rows are zeroed below, not computed.
  auto absent = [&](int64_t e) { return !p.absent.empty() && p.absent[static_cast<size_t>(e)] != 0; };
  for (int64_t e = 0; e < E; ++e) {
    const int64_t n = begin[e + 1] - begin[e];
    if (n == 0 || absent(e)) continue;
    const ExpertLinears& ex = p.routed[static_cast<size_t>(e)];
    sc.jobs.push_back(linear_job(ex.w1, expert_input(e), n, h1 + begin[e] * I, act(ex.w1), true));
    sc.jobs.push_back(linear_job(ex.w3, expert_input(e), n, h3 + begin[e] * I, act(ex.w3), true));
  }
  sc.jobs.push_back(linear_job(p.shared.w1, x, rows, h1 + assigned * I, act(p.shared.w1), true));
  sc.jobs.push_back(linear_job(p.shared.w3, x, rows, h3 + assigned * I, act(p.shared.w3), true));
  linear(sc.jobs, observer);

  float* mid = grow_scratch(sc.mid, hidden);
  const int64_t i_blocks = (I + kColumnsPerUnit - 1) / kColumnsPerUnit;
  const int64_t s_blocks = (Is + kColumnsPerUnit - 1) / kColumnsPerUnit;
  const int64_t routed_units = assigned * i_blocks;
  parallel_units(routed_units + rows * s_blocks, hidden * 24, [&](int64_t u0, int64_t u1) {
    for (int64_t unit = u0; unit < u1; ++unit) {
      const bool routed = unit < routed_units;
      const int64_t width = routed ? I : Is, blocks = routed ? i_blocks : s_blocks;
      const int64_t local = routed ? unit : unit - routed_units;
      const int64_t row = local / blocks, i0 = (local % blocks) * kColumnsPerUnit, i1 = std::min(width, i0 + kColumnsPerUnit);
      if (routed && absent(selected[arows[row]])) continue;
      const int64_t base = routed ? row * I : assigned * I + row * Is;
      const float rw = routed ? route[arows[row]] : 1.0f;
      for (int64_t i = i0; i < i1; ++i) {
        float g = h1[base + i], u = h3[base + i];
        if (limit > 0.0f) {
          u = std::clamp(u, -limit, limit);
          g = std::min(g, limit);
        }
        const float hidden_value = silu(g) * u;
        mid[base + i] = round_bf16(routed ? rw * hidden_value : hidden_value);
      }
    }
  });
  float* down = grow_scratch(sc.down, total * D);
  sc.jobs.clear();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t n = begin[e + 1] - begin[e];
    if (n == 0) continue;
    if (absent(e)) {
      std::fill(down + begin[e] * D, down + begin[e + 1] * D, 0.0f);
      continue;
    }
    const ExpertLinears& ex = p.routed[static_cast<size_t>(e)];
    sc.jobs.push_back(linear_job(ex.w2, mid + begin[e] * I, n, down + begin[e] * D, act(ex.w2), true));
  }
  sc.jobs.push_back(linear_job(p.shared.w2, mid + assigned * I, rows, down + assigned * D, act(p.shared.w2), true));
  linear(sc.jobs, observer);

  // Each token's routed outputs in ascending expert id (the order of the assignments),
  // then the shared expert's.
  int32_t* by_token = grow_scratch(sc.token_assignments, assigned);
  {
    int32_t* count = grow_scratch(sc.token_fill, rows);
    std::fill(count, count + rows, 0);
    for (int64_t a = 0; a < assigned; ++a) {
      const int64_t t = arows[a] / k;
      by_token[t * k + count[t]++] = static_cast<int32_t>(a);
    }
  }
  const int64_t d_blocks = (D + kColumnsPerUnit - 1) / kColumnsPerUnit;
  parallel_units(rows * d_blocks, rows * D * (k + 2), [&](int64_t u0, int64_t u1) {
    for (int64_t unit = u0; unit < u1; ++unit) {
      const int64_t t = unit / d_blocks, d0 = (unit % d_blocks) * kColumnsPerUnit, d1 = std::min(D, d0 + kColumnsPerUnit);
      for (int64_t d = d0; d < d1; ++d) {
        float acc = 0.0f;
        for (int64_t j = 0; j < k; ++j) acc += down[by_token[t * k + j] * D + d];
        out[t * D + d] = round_bf16(acc + down[(assigned + t) * D + d]);
      }
    }
  });
}

}  // namespace fp4serve::cpu
