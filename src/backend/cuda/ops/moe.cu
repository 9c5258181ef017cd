// The MoE's routing, SwiGLU and combine on the GPU (the CPU backend's moe.cpp). The projections
// run through linear_exact_gathered (every assignment picks its expert's weights on the
// device), so no expert count is read back.
#include <cuda_runtime.h>

#include "backend/cuda/ops/device_numerics.cuh"
#include "backend/cuda/ops/ops.h"

namespace fp4serve::cuda::ops {
namespace {

constexpr int kMaxExperts = 1024;
constexpr int kMaxPerToken = 32;

__device__ __forceinline__ float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

__global__ void route_kernel(const float* logits, int64_t experts, int64_t k, const float* bias, const int32_t* tid2eid,
                             const int32_t* tokens, float route_scale, int32_t* all_selected, float* all_weights) {
  __shared__ float scores[kMaxExperts];
  __shared__ int32_t picked[kMaxPerToken];
  const int64_t t = blockIdx.x;
  for (int64_t e = threadIdx.x; e < experts; e += blockDim.x) scores[e] = sqrtf(softplus(logits[t * experts + e]));
  __syncthreads();
  if (tid2eid) {
    for (int64_t i = threadIdx.x; i < k; i += blockDim.x) picked[i] = tid2eid[static_cast<int64_t>(tokens[t]) * k + i];
  } else {
    // The rank of score + bias among all experts (ties: lower id first) is the slot.
    for (int64_t e = threadIdx.x; e < experts; e += blockDim.x) {
      const float se = scores[e] + bias[e];
      int64_t rank = 0;
      for (int64_t o = 0; o < experts && rank < k; ++o) {
        const float so = scores[o] + bias[o];
        rank += (so > se || (so == se && o < e)) ? 1 : 0;
      }
      if (rank < k) picked[rank] = static_cast<int32_t>(e);
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float w[kMaxPerToken];
    float sum = 0.0f;
    for (int64_t i = 0; i < k; ++i) sum += (w[i] = scores[picked[i]]);
    for (int64_t i = 0; i < k; ++i) {
      all_selected[t * k + i] = picked[i];
      all_weights[t * k + i] = w[i] / sum * route_scale;
    }
  }
}

__global__ void swiglu_kernel(const float* g_in, const float* u_in, const float* route_weight, int64_t width,
                              int64_t total, float limit, float* mid) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  float g = g_in[i], u = u_in[i];
  if (limit > 0.0f) {
    u = fminf(fmaxf(u, -limit), limit);
    g = fminf(g, limit);
  }
  const float hidden = g / (1.0f + expf(-g)) * u;
  mid[i] = round_bf16(route_weight ? route_weight[i / width] * hidden : hidden);
}

__global__ void combine_kernel(const float* down, const float* shared, const int32_t* selected, int64_t k, int64_t dim,
                               float* out) {
  const int64_t t = blockIdx.y;
  const int64_t d = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (d >= dim) return;
  // The token's slots in ascending expert id, slot order within an id (the CPU's assignment order).
  int32_t order[kMaxPerToken];
  for (int64_t i = 0; i < k; ++i) {
    int64_t j = i;
    const int32_t e = selected[t * k + i];
    while (j > 0 && selected[t * k + order[j - 1]] > e) {
      order[j] = order[j - 1];
      --j;
    }
    order[j] = static_cast<int32_t>(i);
  }
  float acc = 0.0f;
  for (int64_t i = 0; i < k; ++i) acc += down[(t * k + order[i]) * dim + d];
  out[t * dim + d] = round_bf16(acc + shared[t * dim + d]);
}

}  // namespace

void moe_route(cudaStream_t stream, const float* logits, int64_t rows, int64_t experts, int64_t k, const float* bias,
               const int32_t* tid2eid, const int32_t* tokens, float route_scale, int32_t* selected, float* weights) {
  require(experts <= kMaxExperts && k <= kMaxPerToken && k <= experts,
          "moe_route: at most 1024 experts and 32 experts per token");
  if (rows == 0) return;
  route_kernel<<<static_cast<unsigned>(rows), 256, 0, stream>>>(logits, experts, k, bias, tid2eid, tokens, route_scale,
                                                                 selected, weights);
  check_launch("moe_route");
}

void swiglu(cudaStream_t stream, const float* g, const float* u, const float* route_weight, int64_t rows, int64_t width,
            float limit, float* mid) {
  const int64_t total = rows * width;
  if (total == 0) return;
  swiglu_kernel<<<static_cast<unsigned>((total + 255) / 256), 256, 0, stream>>>(g, u, route_weight, width, total, limit, mid);
  check_launch("swiglu");
}

void moe_combine(cudaStream_t stream, const float* down, const float* shared, const int32_t* selected, int64_t rows,
                 int64_t k, int64_t dim, float* out) {
  require(k <= kMaxPerToken, "moe_combine: at most 32 experts per token");
  if (rows == 0) return;
  combine_kernel<<<dim3(static_cast<unsigned>((dim + 255) / 256), static_cast<unsigned>(rows)), 256, 0, stream>>>(
      down, shared, selected, k, dim, out);
  check_launch("moe_combine");
}

}  // namespace fp4serve::cuda::ops
