// The scratch of mHC around a sublayer (Backend::hc_pre before it, hc_post after it), for the
// model's blocks and the DSpark draft's stages alike: grown to the largest step and kept.
#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "config/model_config.h"
#include "model/device_array.h"

namespace fp4serve {

class HcScratch {
 public:
  // hc_pre's parameters for n rows of X [n, hc, D] into u [n, D]; the caller sets `site` per
  // sublayer, and hc_post reads the same post and comb.
  HcPreParams pre_params(Backend& backend, const ModelConfig& c, int64_t n, const float* X, float* u) {
    const int64_t hc = c.hc_mult;
    HcPreParams p;
    p.rows = n;
    p.dim = c.hidden_size;
    p.hc = hc;
    p.sinkhorn_iters = c.hc_sinkhorn_iters;
    p.norm_eps = static_cast<float>(c.rms_norm_eps);
    p.hc_eps = static_cast<float>(c.hc_eps);
    p.X = X;
    p.mixes = mixes_.reserve(backend, n * (2 + hc) * hc);
    p.u = u;
    p.pre = pre_.reserve(backend, n * hc);
    p.post = post_.reserve(backend, n * hc);
    p.comb = comb_.reserve(backend, n * hc * hc);
    return p;
  }

 private:
  DeviceArray<float> mixes_, pre_, post_, comb_;
};

}  // namespace fp4serve
