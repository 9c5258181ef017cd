// DSpark's draft ops on the GPU (the CPU backend's CpuBackend::mean_streams and
// cpu::block_attention): the target taps' mean over the hc streams, and the draft's
// non-causal attention of a block over its context ring and its own keys.
#include <cuda_runtime.h>

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
  const float* qh = p.q + (t * p.heads + h) * hd;
  float* s = p.scores + (t * p.heads + h) * p.max_keys;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int64_t j = warp; j < n; j += kWarps) {
    const float* kj = keys.key(j);
    float dot = 0.0f;
    for (int64_t i = lane; i < hd; i += 32) dot += qh[i] * kj[i];
    dot = warp_sum(dot);
    if (lane == 0) s[j] = dot * p.scale;
  }
  __syncthreads();
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, s[j]);
  m = block_max(m, red);
  float den = 0.0f;
  for (int64_t j = 0; j < n; ++j) den += expf(s[j] - m);
  den += expf(p.sink[h] - m);
  for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) {
    float acc = 0.0f;
    for (int64_t j = 0; j < n; ++j) acc += round_bf16(expf(s[j] - m)) * keys.key(j)[i];
    o_shared[i] = round_bf16(acc / den);
  }
  __syncthreads();
  const float* cos = p.cos + t * p.rd / 2;
  const float* sin = p.sin + t * p.rd / 2;
  for (int64_t i = threadIdx.x; i < p.rd / 2; i += blockDim.x) rotate_pair(o_shared + hd - p.rd + 2 * i, cos[i], sin[i], true);
  __syncthreads();
  float* o = p.o + (t * p.heads + h) * hd;
  for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) o[i] = o_shared[i];
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
