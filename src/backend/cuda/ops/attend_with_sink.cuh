// One query head attending over n keys with a sink, as the CPU backend's attention.cpp does
// it (used by the layers' sparse attention and DSpark's block attention): scores in a warp
// per key, the softmax denominator summed by every thread in key order (the CPU's order),
// bf16 probabilities times the keys (K = V), the output rounded to bf16, then the inverse
// RoPE of the last rd dims. One block per (row, head); `keys.key(j)` is key j's hd values.
#pragma once

#include <cuda_runtime.h>

#include "backend/cuda/ops/device_numerics.cuh"

namespace fp4serve::cuda::ops {

struct SinkAttentionHead {
  const float* q;    // [hd]
  float* scores;     // [n] scratch
  float sink, scale;
  const float* cos;  // [rd / 2] of the row's position
  const float* sin;
  int64_t hd, rd;
  float* o;          // [hd]
};

// o_shared: hd floats of dynamic shared memory; red: 32 floats of shared memory.
template <int kWarps, typename Keys>
__device__ void attend_with_sink(const SinkAttentionHead& a, const Keys& keys, int64_t n, float* o_shared, float* red) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int64_t j = warp; j < n; j += kWarps) {
    const float* kj = keys.key(j);
    float dot = 0.0f;
    for (int64_t i = lane; i < a.hd; i += 32) dot += a.q[i] * kj[i];
    dot = warp_sum(dot);
    if (lane == 0) a.scores[j] = dot * a.scale;
  }
  __syncthreads();
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, a.scores[j]);
  m = block_max(m, red);
  float den = 0.0f;
  for (int64_t j = 0; j < n; ++j) den += expf(a.scores[j] - m);
  den += expf(a.sink - m);
  for (int64_t i = threadIdx.x; i < a.hd; i += blockDim.x) {
    float acc = 0.0f;
    for (int64_t j = 0; j < n; ++j) acc += round_bf16(expf(a.scores[j] - m)) * keys.key(j)[i];
    o_shared[i] = round_bf16(acc / den);
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < a.rd / 2; i += blockDim.x)
    rotate_pair(o_shared + a.hd - a.rd + 2 * i, a.cos[i], a.sin[i], true);
  __syncthreads();
  for (int64_t i = threadIdx.x; i < a.hd; i += blockDim.x) a.o[i] = o_shared[i];
}

}  // namespace fp4serve::cuda::ops
