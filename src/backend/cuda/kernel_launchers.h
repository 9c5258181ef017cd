// Host-side launchers of the Hopper kernels (implemented in the .cu files beside this).
// They check nothing about the inputs (linear_cuda.cpp does) and report only CUDA errors.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernel_args.h"

namespace fp4serve::cuda {

// ---- decode regime (M <= 16): skinny_launch.cu ---------------------------------------------

// How a skinny launch splits its work; sizes the scratch it needs.
struct SkinnyPlan {
  int token_tiles = 1;  // 8-token MMA columns: 1 (M <= 8) or 2
  int row_blocks = 0;   // 256-row blocks (MoE gate/up: 128 rows of W1 + 128 of W3)
  int splits = 1;       // CTAs along K per row block
  int kc_max = 0;       // K elements of the largest split
  int grid = 0;
  int64_t smem_bytes = 0;
  int64_t partial_floats = 0;  // scratch floats needed (0 when splits == 1)
  int64_t counters = 0;        // scratch counters needed
};

SkinnyPlan plan_skinny_dense(WeightKind weight, int64_t n, int64_t k, int64_t m, int num_sms);
// MoE: `tokens` routed tokens (sets 8 or 16 pairs per item), `max_items` items at most.
SkinnyPlan plan_skinny_moe(WeightKind weight, bool gate_up, int64_t n, int64_t k, int64_t tokens, int max_items,
                           int num_sms);
// Pairs per MoE item for the skinny kernels (the routing plan cuts experts into these).
inline int skinny_pairs_per_item(int64_t tokens) { return tokens <= 8 ? 8 : 16; }

cudaError_t launch_skinny_dense(const DenseGemmArgs& args, const SkinnyPlan& plan, const Scratch& scratch,
                                cudaStream_t stream);
// Decode on FP8 wgmma (skinny_wgmma.cu) for FP8 block-128 (M <= 16), MXFP4 (M <= 8) and NVFP4
// (M <= 4) weights with FP8 activations: weights in registers as the 64-row A operand (4-bit
// ones converted to E4M3 exactly), tokens as N. The tensor cores' accumulation within a few
// chained k32 wgmmas keeps about 14 bits, as on the prefill wgmma path.
bool wgmma_decode_supported(const DenseGemmArgs& args);
// Whether the decode GEMM runs there: supported and the weight under 64 MB (v11 of
// skinny_gemm.cuh streams the larger ones as fast; docs/kernels/skinny.md v15-v17).
bool wgmma_decode_chosen(const DenseGemmArgs& args);
SkinnyPlan plan_wgmma_decode(int64_t n, int64_t k, int64_t m, int num_sms);
cudaError_t launch_wgmma_decode(const DenseGemmArgs& args, const SkinnyPlan& plan, const Scratch& scratch,
                                cudaStream_t stream);
cudaError_t launch_skinny_moe(const MoeGemmArgs& args, bool gate_up, const SkinnyPlan& plan, const Scratch& scratch,
                              cudaStream_t stream);

// ---- prefill regime (M > 16): tiled_launch.cu ------------------------------------------------

constexpr int kTiledPairsPerItem = 128;

// FP8 block-128 and BF16 weights whose shapes and alignment the wgmma kernels take go there
// (wgmma_gemm.cu); everything else runs the mma.sync kernels of tiled_gemm.cuh.
cudaError_t launch_tiled_dense(const DenseGemmArgs& args, cudaStream_t stream);
bool wgmma_dense_supported(const DenseGemmArgs& args);
cudaError_t launch_wgmma_dense(const DenseGemmArgs& args, cudaStream_t stream);

// Exact BF16 copies for the BF16 wgmma kernel (prefill_widen.cu): 4-bit weights [n, k] with
// their block scales (NVFP4's global scale stays out), and FP8 activations [m, k] times their
// per-128 scales. Both need k % 128 == 0.
cudaError_t launch_widen_fp4_weight(WeightKind weight, const void* w, const void* w_scale, int64_t n, int64_t k,
                                    void* out, cudaStream_t stream);
cudaError_t launch_widen_fp8_activations(const void* x, const float* x_scale, int64_t x_stride, int64_t m, int64_t k,
                                         void* out, cudaStream_t stream);
cudaError_t launch_tiled_moe(const MoeGemmArgs& args, bool gate_up, int num_sms, cudaStream_t stream);

// ---- activations and routing: activation_quant.cu, moe_routing.cu ----------------------------

// bf16 [rows, cols] -> E4M3 [rows, cols] + float scales [rows, cols/128]; cols % 128 == 0.
cudaError_t launch_quantize_activations_fp8(const void* x_bf16, int64_t x_stride, int64_t rows, int64_t cols,
                                            void* q, int64_t q_stride, float* scales, cudaStream_t stream);

struct MoePlanOutputs {
  int* sorted_row = nullptr;       // [pairs] token of each sorted pair
  float* sorted_weight = nullptr;  // [pairs] its routing weight
  int* pair_position = nullptr;    // [pairs] sorted position of pair (token * top_k + slot)
  int* items = nullptr;            // [max_items * 3] {expert, first pair, count}
  int* num_items = nullptr;        // [1] item count, -1 if an expert id was out of range
};
// experts <= 1024.
cudaError_t launch_moe_plan(const int* expert_ids, const float* weights, int tokens, int top_k, int experts,
                            int pairs_per_item, const MoePlanOutputs& out, cudaStream_t stream);
// y[t, :] = sum of the token's expert rows y_pairs[pair_position[t*k + j], :] in ascending expert id (fp32).
cudaError_t launch_moe_combine(const void* y_pairs, int64_t pair_stride, const int* pair_position,
                               const int* expert_ids, int tokens, int top_k, int64_t width, float* y,
                               int64_t y_stride, cudaStream_t stream);

}  // namespace fp4serve::cuda
