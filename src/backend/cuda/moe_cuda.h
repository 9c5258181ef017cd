// The routed experts of one MoE layer on a Hopper GPU, every active expert in one launch per
// projection: route (sort pairs by expert) -> fused gate/up with SwiGLU, clamp and routing
// weight -> FP8 quantization of the hidden rows -> down projection -> per-token sum in
// ascending expert id (the reference's order). Decode (<= 16 tokens) streams the experts'
// weights with the skinny kernels; prefill uses the tiled ones.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "formats/linear_weight.h"
#include "backend/cuda/gpu_context.h"
#include "backend/cuda/linear_cuda.h"

namespace fp4serve::cuda {

class DeviceExperts {
 public:
  // One weight per expert for each of w1 (gate) [I, D], w3 (up) [I, D] and w2 (down) [D, I];
  // all of one encoding (FP8 block-128, MXFP4 or NVFP4) and shape. NVFP4 global scales stay
  // per expert and per projection (w1 and w3 may differ). Errors name the offending weight.
  static DeviceExperts upload(std::span<const LinearWeight> w1, std::span<const LinearWeight> w3,
                              std::span<const LinearWeight> w2);
  // The same from weights already on the device.
  static DeviceExperts assemble(std::vector<DeviceLinear> w1, std::vector<DeviceLinear> w3,
                                std::vector<DeviceLinear> w2);

  WeightKind kind() const { return kind_; }
  int count() const { return static_cast<int>(w1_.size()); }
  int64_t hidden() const { return hidden_; }
  int64_t intermediate() const { return intermediate_; }
  // Device bytes of expert e (w1 + w3 + w2, scales included).
  size_t expert_bytes(int e) const;

  // Device tables of per-expert pointers and global scales, [count] each.
  const void* const* table(int which) const;
  const void* const* scale_table(int which) const;
  const float* global_scales(int which) const;

 private:
  WeightKind kind_ = WeightKind::kMXFP4;
  int64_t hidden_ = 0, intermediate_ = 0;
  std::vector<DeviceLinear> w1_, w3_, w2_;
  DeviceBuffer tables_;  // [3 weights][count] then [3 scales][count] pointers
  DeviceBuffer scales_;  // [3][count] floats
};

// Routing decision on the device: expert ids and weights [tokens, top_k] (weights already
// renormalised and multiplied by the routed scaling factor, as the reference does).
struct MoeRouting {
  const int* expert_ids = nullptr;
  const float* weights = nullptr;
  int64_t tokens = 0;
  int top_k = 0;
};

// A routing decision sorted into the grouped GEMMs' items (device work buffers of the context;
// valid until the next MoE call on it).
struct MoeBatch {
  bool decode = true;
  int64_t tokens = 0;
  int top_k = 0;
  int pairs_per_item = 0;
  int max_items = 0;
  const int* expert_ids = nullptr;
  const int* sorted_row = nullptr;
  const float* sorted_weight = nullptr;
  const int* pair_position = nullptr;
  const int* items = nullptr;
  const int* num_items = nullptr;
};

// Step 1: sort the routing decision by expert (one kernel). Decode (the skinny kernels) is
// chosen automatically while the pairs average at most 4 per expert.
MoeBatch route_moe(GpuContext& ctx, const DeviceExperts& experts, const MoeRouting& routing,
                   Regime regime = Regime::kAuto);
// Step 2: gate/up + SwiGLU for every pair, FP8 quantization of the hidden rows, down
// projection; leaves one bf16 row [D] per pair in the context's work buffer, returned.
const void* moe_projections(GpuContext& ctx, const DeviceExperts& experts, const MoeBatch& batch, const GemmInput& x,
                            float swiglu_limit);
// Step 3: per-token sums of the pair rows in ascending expert id into y (float [tokens, D]).
void combine_moe(GpuContext& ctx, const MoeBatch& batch, const void* pair_rows, int64_t hidden, float* y);

// All three steps: y (float [tokens, D], row stride D) = sum over each token's experts of
// w2 · (weight · silu(min(g, L)) · clamp(u, -L, L)), g = x·w1, u = x·w3 (each rounded to bf16),
// with x the FP8 activations (codes + scales) of the tokens. swiglu_limit <= 0: no clamp.
void moe_experts(GpuContext& ctx, const DeviceExperts& experts, const GemmInput& x, const MoeRouting& routing,
                 float swiglu_limit, float* y, Regime regime = Regime::kAuto);

}  // namespace fp4serve::cuda
