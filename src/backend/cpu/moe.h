// The mixture-of-experts FFN of DeepSeek-V4 on the CPU (DeepSeek's inference/model.py,
// Gate and MoE): fp32 gate, sqrt(softplus) scores, selection by tid2eid (hash layers)
// or by top-k of score + bias, weights renormalized from the unbiased scores and
// scaled; routed experts apply the routing weight before w2; SwiGLU clamp on routed
// and shared experts; an fp32 accumulator over experts in ascending id, then the
// shared expert. Params: backend/backend.h.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace fp4serve::cpu {

struct MoeScratch {
  std::vector<float> logits, route_weights, gathered, h1, h3, mid, down;
  std::vector<int32_t> selected, assignment_rows, expert_begin, token_assignments, token_fill;
  std::vector<LinearJob> jobs;
};

// Routing of one token (exposed for tests): indices [k] and weights [k] from gate logits [E].
void route_token(const float* logits, int64_t experts, int64_t k, const float* bias, const int32_t* hash_experts,
                 float route_scale, int32_t* indices, float* weights);

void moe(const MoeParams& p, MoeScratch& scratch, ActivationObserver* observer);

}  // namespace fp4serve::cpu
