// Plain-data arguments of the Hopper GEMM kernels, shared by the host launchers (.cu) and
// the C++ API above them. Pointers are device pointers; nothing here is validated (the API
// layer in linear_cuda.cpp / moe_cuda.cpp does that and names the culprit).
#pragma once

#include <cstdint>

namespace fp4serve::cuda {

// How a weight is stored on the device. The bytes are the checkpoint's own layout:
//   kBF16     [N, K] bf16
//   kFP8Block [N, K] E4M3; scales float [ceil(N/128), K/128] (E8M0 or F32 checkpoint scales, widened)
//   kMXFP4    [N, K/2] packed E2M1 (element 2j in the low nibble); scales E8M0 bytes [N, K/32]
//   kNVFP4    [N, K/2] packed E2M1; scales E4M3 bytes [N, K/16]; one float global scale
enum class WeightKind : int { kBF16 = 0, kFP8Block = 1, kMXFP4 = 2, kNVFP4 = 3 };

// Activations: FP8 = E4M3 [M, K] with float power-of-two scales [M, K/128] (DeepSeek's
// act_quant); BF16 = [M, K] bf16 (BF16 weights, or NVFP4 with BF16 activations).
enum class ActKind : int { kFP8 = 0, kBF16 = 1 };

// Device scratch for split-K partial sums and their arrival counters. Counters must be zero
// before the first launch; every launch leaves them zero again.
struct Scratch {
  float* partials = nullptr;
  int64_t partial_floats = 0;
  unsigned* counters = nullptr;
  int64_t counter_count = 0;
};

// y[M, N] (bf16) = x[M, K] * W^T, times global_scale (NVFP4; 1 otherwise).
struct DenseGemmArgs {
  WeightKind weight = WeightKind::kBF16;
  ActKind act = ActKind::kBF16;
  const void* w = nullptr;
  const void* w_scale = nullptr;
  float global_scale = 1.0f;
  int64_t n = 0, k = 0;
  const void* x = nullptr;
  const float* x_scale = nullptr;  // FP8 activations: [M, K/128]
  int64_t x_stride = 0;            // elements between activation rows
  int64_t m = 0;
  void* y = nullptr;  // bf16
  int64_t y_stride = 0;
};

// One grouped MoE projection over every active expert. Pairs (token, expert slot) are sorted
// by expert; items[3*i .. 3*i+2] = {expert, first sorted pair, pair count} tile the sorted
// pairs of each expert into chunks of at most `pairs_per_item`.
//   gate/up: out[pair, i] = bf16(route_weight * silu(min(g, L)) * clamp(u, -L, L)), where
//            g = bf16(x W1^T * gs1), u = bf16(x W3^T * gs3) for the pair's token row
//   down:    out[pair, d] = bf16(h W2^T * gs2) for the pair's own row of h
struct MoeGemmArgs {
  WeightKind weight = WeightKind::kMXFP4;
  const void* const* w[2] = {nullptr, nullptr};        // per-expert weight pointers (W1/W3, or W2 in [0])
  const void* const* w_scale[2] = {nullptr, nullptr};  // per-expert scale pointers
  const float* global_scale[2] = {nullptr, nullptr};   // per-expert NVFP4 global scales (else nullptr)
  int64_t n = 0, k = 0;                                // rows and columns of one expert's matrix
  const void* x = nullptr;                             // FP8 activations
  const float* x_scale = nullptr;
  int64_t x_stride = 0;
  const int* act_row = nullptr;        // gate/up: activation row of each sorted pair; down: nullptr (row = pair)
  const float* route_weight = nullptr;  // gate/up: routing weight of each sorted pair
  const int* items = nullptr;
  const int* num_items = nullptr;  // device count of items
  int max_items = 0;               // host bound on *num_items (sizes the grid and scratch)
  int pairs_per_item = 16;
  float swiglu_limit = 0.0f;  // <= 0: no clamp
  void* out = nullptr;        // bf16 [pairs, n]
  int64_t out_stride = 0;
};

}  // namespace fp4serve::cuda
