// What the decode (skinny_gemm.cuh) and prefill (tiled_gemm.cuh) kernels share around the MoE
// projections: the gate/up epilogue of DeepSeek's inference/model.py (Expert) and the launchers' copy of the
// grouped-GEMM arguments into their kernel parameters.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "backend/cuda/kernel_args.h"

namespace fp4serve::cuda {

__device__ __forceinline__ float round_to_bf16(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

// One hidden value from the fp32 sums of a row of W1 and W3: g and u rounded to bf16 after
// their global scales, min(g, L) and clamp(u, -L, L) when L > 0, then route_weight * silu(g) * u.
__device__ __forceinline__ float swiglu_hidden(float gate_sum, float up_sum, float gate_scale, float up_scale,
                                               float limit, float route_weight) {
  float gate = round_to_bf16(gate_sum * gate_scale);
  float up = round_to_bf16(up_sum * up_scale);
  if (limit > 0.0f) {
    gate = gate > limit ? limit : gate;
    up = up > limit ? limit : (up < -limit ? -limit : up);
  }
  return gate / (1.0f + expf(-gate)) * up * route_weight;
}

// The fields that skinny::Params and tiled::Params both take from MoeGemmArgs.
template <typename Params>
void copy_moe_args(const MoeGemmArgs& a, Params& p) {
  for (int i = 0; i < 2; ++i) {
    p.expert_w[i] = a.w[i];
    p.expert_scale[i] = a.w_scale[i];
    p.expert_gs[i] = a.global_scale[i];
  }
  p.n = a.n;
  p.k = a.k;
  p.x = static_cast<const uint8_t*>(a.x);
  p.x_scale = a.x_scale;
  p.x_stride = a.x_stride;
  p.act_row = a.act_row;
  p.route_weight = a.route_weight;
  p.items = a.items;
  p.num_items = a.num_items;
  p.swiglu_limit = a.swiglu_limit;
  p.out = static_cast<__nv_bfloat16*>(a.out);
  p.out_stride = a.out_stride;
}

}  // namespace fp4serve::cuda
