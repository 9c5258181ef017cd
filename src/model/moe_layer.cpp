#include "model/moe_layer.h"

namespace fp4serve {

MoeLayer::MoeLayer(Backend& backend, const ModelConfig& c, const MoeWeights& w, const Numerics& numerics) {
  for (const ExpertWeights& e : w.experts) routed_.push_back({e.w1, e.w2, e.w3});
  params_.dim = c.hidden_size;
  params_.intermediate = c.moe_intermediate_size;
  params_.shared_intermediate = w.shared.w1->out_features;
  params_.experts = c.n_routed_experts;
  params_.experts_per_token = c.experts_per_token;
  params_.route_scale = static_cast<float>(c.routed_scaling_factor);
  params_.swiglu_limit = static_cast<float>(c.swiglu_limit);
  params_.numerics = numerics;
  params_.gate = w.gate;
  if (w.hash) params_.tid2eid = backend.place(w.tid2eid);
  else params_.bias = backend.place(w.bias);
  params_.routed = routed_;
  params_.absent = w.absent;
  params_.shared = {w.shared.w1, w.shared.w2, w.shared.w3};
}

void MoeLayer::forward(Backend& backend, const float* x, const int32_t* tokens, int64_t rows, float* out) const {
  MoeParams p = params_;
  p.rows = rows;
  p.x = x;
  p.tokens = tokens;
  p.out = out;
  backend.moe(p);
}

}  // namespace fp4serve
