// DSpark's draft ops on the GPU (the CPU backend's CpuBackend::mean_streams and
// cpu::block_attention): the target taps' mean over the hc streams, and the draft's
// non-causal attention of a block over its context ring and its own keys.
#include <cuda_runtime.h>

#include "backend/cuda/ops/attend_with_sink.cuh"
#include "backend/cuda/ops/device_numerics.cuh"
#include "backend/cuda/ops/dspark_ops.h"

namespace fp4serve::cuda::ops {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;

__global__ void mean_streams_kernel(const float* X, int64_t hc, int64_t dim, float* y, int64_t y_stride) {
  const int64_t r = blockIdx.x;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
    float sum = 0.0f;
    for (int64_t j = 0; j < hc; ++j) sum += X[(r * hc + j) * dim + d];
    y[r * y_stride + d] = round_bf16(sum / static_cast<float>(hc));
  }
}

// Key j of a row: the ring's positions lo..start-1, then the run's kv rows.
struct BlockKeys {
  const float* ring;
  const float* run_kv;
  int64_t lo, ring_keys, window, hd;
  __device__ const float* key(int64_t j) const {
    return j < ring_keys ? ring + ((lo + j) % window) * hd : run_kv + (j - ring_keys) * hd;
  }
};

__global__ void block_attention_kernel(BlockAttention p, const StepRow* rows) {
  extern __shared__ float o_shared[];
  __shared__ float red[32];
  const int64_t t = blockIdx.x, h = blockIdx.y, hd = p.hd;
  const StepRow row = rows[t];
  const int64_t lo = row.start - p.window > 0 ? row.start - p.window : 0;
  const int64_t ring_keys = row.start - lo;
  const int64_t n = ring_keys + (row.end - row.start);
  const BlockKeys keys{row.slot + p.ring_offset, p.kv + row.row_begin * hd, lo, ring_keys, p.window, hd};
  const SinkAttentionHead a{p.q + (t * p.heads + h) * hd, p.scores + (t * p.heads + h) * p.max_keys, p.sink[h], p.scale,
                            p.cos + t * p.rd / 2, p.sin + t * p.rd / 2, hd, p.rd, p.o + (t * p.heads + h) * hd};
  attend_with_sink<kWarps>(a, keys, n, o_shared, red);
}

}  // namespace

void mean_streams(cudaStream_t stream, const float* X, int64_t rows, int64_t hc, int64_t dim, float* y, int64_t y_stride) {
  if (rows == 0) return;
  mean_streams_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(X, hc, dim, y, y_stride);
  check_launch("mean_streams");
}

void block_attention(cudaStream_t stream, const BlockAttention& p, const StepRow* rows, int64_t row_count) {
  if (row_count == 0) return;
  const size_t smem = static_cast<size_t>(p.hd) * sizeof(float);
  block_attention_kernel<<<dim3(static_cast<unsigned>(row_count), static_cast<unsigned>(p.heads)), kThreads, smem, stream>>>(
      p, rows);
  check_launch("block_attention");
}

}  // namespace fp4serve::cuda::ops
