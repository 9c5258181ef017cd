// MoE routing on the GPU: sorts the (token, slot) pairs of a top-k routing decision by
// expert into the items the grouped GEMMs iterate over, and adds each token's expert outputs
// back together in the reference's order.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/kernel_launchers.h"

namespace fp4serve::cuda {
namespace {

// Sorts the (token, slot) pairs of a routing decision by expert and cuts each expert's run
// into items of at most `pairs_per_item` pairs. One CTA; the order of pairs inside an expert
// is not fixed (atomics), which does not change any result: every pair's output row is
// computed by the same arithmetic wherever it sits.
constexpr int kPlanThreads = 1024;

__device__ void block_exclusive_scan(int* values, int* scratch, int count) {
  // Hillis-Steele over `count` <= kPlanThreads entries, in place.
  const int i = threadIdx.x;
  int v = i < count ? values[i] : 0;
  scratch[i] = v;
  __syncthreads();
  for (int off = 1; off < count; off <<= 1) {
    const int add = (i >= off && i < count) ? scratch[i - off] : 0;
    __syncthreads();
    if (i < count) scratch[i] += add;
    __syncthreads();
  }
  if (i < count) values[i] = scratch[i] - v;
  __syncthreads();
}

__global__ void __launch_bounds__(kPlanThreads) moe_plan_kernel(const int* __restrict__ expert_ids,
                                                                const float* __restrict__ weights, int pairs,
                                                                int top_k, int experts, int pairs_per_item,
                                                                MoePlanOutputs out) {
  __shared__ int count[kPlanThreads];
  __shared__ int offset[kPlanThreads];
  __shared__ int item_offset[kPlanThreads];
  __shared__ int scratch[kPlanThreads];
  __shared__ int bad;
  const int e = threadIdx.x;
  if (e == 0) bad = 0;
  if (e < experts) count[e] = 0;
  __syncthreads();
  for (int p = threadIdx.x; p < pairs; p += kPlanThreads) {
    const int id = expert_ids[p];
    if (id < 0 || id >= experts) {
      bad = 1;
    } else {
      atomicAdd(&count[id], 1);
    }
  }
  __syncthreads();
  if (e < experts) {
    offset[e] = count[e];
    item_offset[e] = (count[e] + pairs_per_item - 1) / pairs_per_item;
  }
  __syncthreads();
  block_exclusive_scan(offset, scratch, experts);
  block_exclusive_scan(item_offset, scratch, experts);
  if (e < experts) {
    const int items = (count[e] + pairs_per_item - 1) / pairs_per_item;
    for (int i = 0; i < items; ++i) {
      int* item = out.items + 3 * (item_offset[e] + i);
      item[0] = e;
      item[1] = offset[e] + i * pairs_per_item;
      item[2] = min(pairs_per_item, count[e] - i * pairs_per_item);
    }
    if (e == experts - 1) *out.num_items = bad ? -1 : item_offset[e] + items;
  }
  __syncthreads();
  if (e < experts) count[e] = offset[e];  // reuse as the fill cursor
  __syncthreads();
  for (int p = threadIdx.x; p < pairs; p += kPlanThreads) {
    const int id = expert_ids[p];
    if (id < 0 || id >= experts) continue;
    const int pos = atomicAdd(&count[id], 1);
    out.sorted_row[pos] = p / top_k;
    out.sorted_weight[pos] = weights[p];
    out.pair_position[p] = pos;
  }
}

// y[t, d] = sum over the token's slots in ascending expert id of y_pairs[pair, d], fp32.
// Grid (tokens, width / 512): each thread adds two adjacent columns of every slot, with all
// the slots' loads in flight at once.
constexpr int kCombineColumns = 512;

__global__ void moe_combine_kernel(const __nv_bfloat16* __restrict__ y_pairs, int64_t pair_stride,
                                   const int* __restrict__ pair_position, const int* __restrict__ expert_ids,
                                   int top_k, int64_t width, float* __restrict__ y, int64_t y_stride) {
  __shared__ int rows[32];
  const int64_t token = blockIdx.x;
  if (threadIdx.x == 0) {
    int order[32];
    for (int j = 0; j < top_k; ++j) {
      // insertion by expert id: the reference's ascending-expert summation order
      int pos = j;
      while (pos > 0 && expert_ids[token * top_k + order[pos - 1]] > expert_ids[token * top_k + j]) {
        order[pos] = order[pos - 1];
        --pos;
      }
      order[pos] = j;
    }
    for (int j = 0; j < top_k; ++j) rows[j] = pair_position[token * top_k + order[j]];
  }
  __syncthreads();
  const int64_t d = static_cast<int64_t>(blockIdx.y) * kCombineColumns + 2 * threadIdx.x;
  if (d >= width) return;
  // The first 8 slots unrolled so that their loads are all in flight; sums in slot order.
  float sx = 0.0f, sy = 0.0f;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    if (j < top_k) {
      const float2 v =
          __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(y_pairs + rows[j] * pair_stride + d));
      sx += v.x;
      sy += v.y;
    }
  }
  for (int j = 8; j < top_k; ++j) {
    const float2 v = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(y_pairs + rows[j] * pair_stride + d));
    sx += v.x;
    sy += v.y;
  }
  *reinterpret_cast<float2*>(y + token * y_stride + d) = make_float2(sx, sy);
}

}  // namespace

cudaError_t launch_moe_plan(const int* expert_ids, const float* weights, int tokens, int top_k, int experts,
                            int pairs_per_item, const MoePlanOutputs& out, cudaStream_t stream) {
  if (experts > kPlanThreads) return cudaErrorInvalidValue;
  moe_plan_kernel<<<1, kPlanThreads, 0, stream>>>(expert_ids, weights, tokens * top_k, top_k, experts,
                                                  pairs_per_item, out);
  return cudaGetLastError();
}

cudaError_t launch_moe_combine(const void* y_pairs, int64_t pair_stride, const int* pair_position,
                               const int* expert_ids, int tokens, int top_k, int64_t width, float* y,
                               int64_t y_stride, cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  if (top_k > 32 || width % 2 != 0 || pair_stride % 2 != 0 || y_stride % 2 != 0) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(tokens), static_cast<unsigned>((width + kCombineColumns - 1) / kCombineColumns));
  moe_combine_kernel<<<grid, kCombineColumns / 2, 0, stream>>>(static_cast<const __nv_bfloat16*>(y_pairs), pair_stride,
                                                 pair_position, expert_ids, top_k, width, y, y_stride);
  return cudaGetLastError();
}

}  // namespace fp4serve::cuda
