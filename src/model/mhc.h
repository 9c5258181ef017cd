// Manifold-constrained hyper-connections (dsv4-architecture.md §3.3): the residual
// is hc streams of D values; each block site collapses them to one input (pre),
// expands its output back (post) and mixes the streams (comb, Sinkhorn-normalized).
// All mixing math is fp32; stream values and collapsed inputs are stored as bf16.
#pragma once

#include <cstdint>

#include "backend/cpu/thread_pool.h"
#include "model/weights.h"

namespace fp4serve {

// From mixes [(2+hc)*hc] (already scaled by the rms factor): pre [hc], post [hc],
// comb [hc][hc] (comb[j*hc + k]: source stream j, destination k).
void hc_split_sinkhorn(const float* mixes, const float* scale, const float* base, int64_t hc, int64_t iters, float eps,
                       float* pre, float* post, float* comb);

struct HcMixing {
  int64_t hc = 0;
  float* pre = nullptr;   // [rows, hc]
  float* post = nullptr;  // [rows, hc]
  float* comb = nullptr;  // [rows, hc, hc]
};

// For rows of streams X [rows, hc*D]: u [rows, D] = bf16(sum_j pre_j X_j), and the
// post/comb factors for hc_post. `mixes` is scratch of rows*(2+hc)*hc floats.
void hc_pre(const HyperConnectionWeights& site, const float* X, int64_t rows, int64_t D, int64_t hc, int64_t iters,
            float norm_eps, float hc_eps, float* mixes, float* u, HcMixing mixing);

// X'[k] = bf16(post_k * y + sum_j comb[j][k] * X[j]) for each row; X is updated in place.
void hc_post(const float* y, float* X, int64_t rows, int64_t D, const HcMixing& mixing);

// The final collapse: y [rows, D] = bf16(sum_j (sigmoid(mix_j * scale + base_j) + eps) X_j).
// `mixes` and `pre` are scratch of rows*hc floats each.
void hc_head(const HyperConnectionWeights& site, const float* X, int64_t rows, int64_t D, int64_t hc, float norm_eps,
             float hc_eps, float* mixes, float* pre, float* y);

}  // namespace fp4serve
