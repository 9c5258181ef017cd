// The mixture-of-experts FFN of DeepSeek-V4 (dsv4-architecture.md §3.5): fp32 gate,
// sqrt(softplus) scores, selection by tid2eid (hash layers) or by top-k of score +
// bias, weights renormalized from the unbiased scores and scaled; routed experts
// apply the routing weight before w2; SwiGLU clamp on routed and shared experts; an
// fp32 accumulator over experts in ascending id, then the shared expert.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/cpu/linear.h"
#include "config/model_config.h"
#include "model/numerics.h"
#include "model/weights.h"

namespace fp4serve {

struct MoeScratch {
  std::vector<float> logits, route_weights, gathered, h1, h3, mid, down, acc;
  std::vector<int32_t> selected, assignment_rows, expert_begin, token_assignments, token_fill;
  std::vector<cpu::LinearJob> jobs;
};

// Routing of one token (exposed for tests): indices [k] and weights [k] from gate logits [E].
void route_token(const float* logits, int64_t experts, int64_t k, const float* bias, const int32_t* hash_experts,
                 float route_scale, int32_t* indices, float* weights);

struct MoeLayer {
  const ModelConfig* config = nullptr;
  const MoeWeights* weights = nullptr;
  const Numerics* numerics = nullptr;

  // x [rows, D] (bf16 values), tokens [rows] (for hash routing) -> out [rows, D] (bf16 values).
  void forward(const float* x, const int32_t* tokens, int64_t rows, MoeScratch& scratch, float* out) const;
};

}  // namespace fp4serve
