// DSpark's draft ops on the GPU (ops/dspark.cu), beside the forward pass's ops (ops.h):
// the target taps' mean over the hc streams and the draft's non-causal block attention.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/ops/ops.h"

namespace fp4serve::cuda::ops {

// y[r, :] = bf16(mean over the hc streams of X[r]) (fp32 sum in stream order / hc), y_stride apart.
void mean_streams(cudaStream_t stream, const float* X, int64_t rows, int64_t hc, int64_t dim, float* y, int64_t y_stride);

// The non-causal block attention (backend/backend.h BlockAttentionParams): every row of a run
// sees its sequence's context ring (positions max(0, start - window)..start - 1, slot = position
// % window at ring_offset) and then all of the run's kv rows; softmax with a sink, inverse RoPE.
struct BlockAttention {
  const float* q = nullptr;   // [rows, heads, hd]
  const float* kv = nullptr;  // [rows, hd]
  const float* sink = nullptr;
  const float* cos = nullptr;  // [rows, rd/2]: the query's angles
  const float* sin = nullptr;
  int64_t heads = 0, hd = 0, rd = 0, window = 0, ring_offset = 0;
  int64_t max_keys = 0;  // window + the longest run (sizes `scores`)
  float scale = 1.0f;
  float* scores = nullptr;  // scratch [rows * heads * max_keys]
  float* o = nullptr;       // [rows, heads, hd]
};
void block_attention(cudaStream_t stream, const BlockAttention& p, const StepRow* rows, int64_t row_count);

}  // namespace fp4serve::cuda::ops
