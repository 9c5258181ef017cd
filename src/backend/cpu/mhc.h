// Manifold-constrained hyper-connections on the CPU (DeepSeek's inference/model.py,
// Block.hc_pre / hc_post, ParallelHead's hc_head, and hc_split_sinkhorn): the residual
// is hc streams of D values; each block site collapses them to one input (pre),
// expands its output back (post) and mixes the streams (comb, Sinkhorn-normalized).
// All mixing math is fp32; stream values and collapsed inputs are stored as bf16.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace fp4serve::cpu {

// From mixes [(2+hc)*hc] (already scaled by the rms factor): pre [hc], post [hc],
// comb [hc][hc] (comb[j*hc + k]: source stream j, destination k).
void hc_split_sinkhorn(const float* mixes, const float* scale, const float* base, int64_t hc, int64_t iters, float eps,
                       float* pre, float* post, float* comb);

void hc_pre(const HcPreParams& p, ActivationObserver* observer);
void hc_post(const HcPostParams& p);

// Scratch of hc_head, kept between calls so that decode does not allocate.
struct HcHeadScratch {
  std::vector<float> gathered, mixes, pre;
};
void hc_head(const HcHeadParams& p, HcHeadScratch& scratch, ActivationObserver* observer);

}  // namespace fp4serve::cpu
