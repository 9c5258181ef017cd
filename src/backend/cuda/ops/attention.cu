// The stateful part of an attention layer on the GPU (the CPU backend's attention.cpp
// and indexer.cpp): the indexer's scores and top-k, attention with a sink over the
// window and the compressed entries, inverse RoPE, and the window ring. Every row of a
// step runs at once: a row's window keys at positions >= its run's start come from the
// step's kv rows, earlier ones from the ring, which window_store refreshes afterwards.
#include <cuda_runtime.h>

#include "backend/cuda/ops/attend_with_sink.cuh"
#include "backend/cuda/ops/device_numerics.cuh"
#include "backend/cuda/ops/ops.h"

namespace fp4serve::cuda::ops {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;

__global__ void indexer_kernel(int64_t entries_offset, const StepRow* rows, const float* q,
                               const float* weights, int64_t heads, int64_t dim, int64_t ratio, int64_t topk,
                               int64_t max_entries, float* all_scores, int32_t* all_selected) {
  const int64_t t = blockIdx.x;
  const StepRow row = rows[t];
  const float* keys = row.slot + entries_offset;
  const int64_t count = (row.position + 1) / ratio;
  const int64_t k = count < topk ? count : topk;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float* scores = all_scores + t * max_entries;
  int32_t* selected = all_selected + t * topk;
  for (int64_t c = warp; c < count; c += kWarps) {
    float total = 0.0f;
    for (int64_t h = 0; h < heads; ++h) {
      const float* qh = q + (t * heads + h) * dim;
      float dot = 0.0f;
      for (int64_t i = lane; i < dim; i += 32) dot += qh[i] * keys[c * dim + i];
      dot = warp_sum(dot);
      const float relu = fmaxf(round_bf16(dot), 0.0f);
      total += round_bf16(relu * weights[t * heads + h]);
    }
    if (lane == 0) scores[c] = round_bf16(total);
  }
  for (int64_t i = k + threadIdx.x; i < topk; i += blockDim.x) selected[i] = -1;
  __syncthreads();
  // The rank of each entry among all (higher score first, ties to the lower index) is its
  // place in the top-k list.
  for (int64_t c = threadIdx.x; c < count; c += blockDim.x) {
    const float s = scores[c];
    int64_t rank = 0;
    for (int64_t o = 0; o < count && rank < k; ++o) {
      const float so = scores[o];
      rank += (so > s || (so == s && o < c)) ? 1 : 0;
    }
    if (rank < k) selected[rank] = static_cast<int32_t>(c);
  }
}

struct KeySet {
  const float* step_kv;
  const float* window;
  const float* entries;
  const int32_t* selected;  // null: every entry in order
  int64_t row_begin, start, lo, window_keys, w, hd;

  __device__ const float* key(int64_t j) const {
    if (j < window_keys) {
      const int64_t pos = lo + j;
      return pos >= start ? step_kv + (row_begin + pos - start) * hd : window + (pos % w) * hd;
    }
    const int64_t e = selected ? selected[j - window_keys] : j - window_keys;
    return entries + e * hd;
  }
};

__global__ void attention_kernel(SparseAttention p, const StepRow* rows) {
  extern __shared__ float o_shared[];
  __shared__ float red[32];
  const int64_t t = blockIdx.x, h = blockIdx.y, hd = p.hd;
  const StepRow row = rows[t];
  const int64_t lo = row.position - p.window + 1 > 0 ? row.position - p.window + 1 : 0;
  const int64_t window_keys = row.position - lo + 1;
  int64_t entries = 0;
  if (p.ratio > 0) {
    entries = (row.position + 1) / p.ratio;
    if (p.selected && entries > p.topk) entries = p.topk;
  }
  const int64_t n = window_keys + entries;
  const KeySet keys{p.kv, row.slot + p.window_offset, row.slot + p.entries_offset, p.selected ? p.selected + t * p.topk : nullptr,
                    row.row_begin, row.start, lo, window_keys, p.window, hd};
  const SinkAttentionHead a{p.q + (t * p.heads + h) * hd, p.scores + (t * p.heads + h) * p.max_keys, p.sink[h], p.scale,
                            p.cos + t * p.rd / 2, p.sin + t * p.rd / 2, hd, p.rd, p.o + (t * p.heads + h) * hd};
  attend_with_sink<kWarps>(a, keys, n, o_shared, red);
}

__global__ void window_store_kernel(int64_t window_offset, const StepRow* rows, const float* kv, int64_t hd,
                                    int64_t window) {
  const StepRow row = rows[blockIdx.x];
  if (row.position < row.end - window) return;
  float* ring = row.slot + window_offset + (row.position % window) * hd;
  for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) ring[i] = kv[blockIdx.x * hd + i];
}

}  // namespace

void indexer_select(cudaStream_t stream, int64_t entries_offset, const StepRow* rows, int64_t row_count, const float* q, const float* weights, int64_t heads, int64_t dim, int64_t ratio, int64_t topk,
                    int64_t max_entries, float* scores, int32_t* selected) {
  if (row_count == 0) return;
  require(ratio > 0 && topk > 0, "indexer_select: ratio and topk must be positive");
  indexer_kernel<<<static_cast<unsigned>(row_count), kThreads, 0, stream>>>(entries_offset, rows, q, weights, heads, dim, ratio,
                                                                             topk, max_entries, scores, selected);
  check_launch("indexer_select");
}

void sparse_attention(cudaStream_t stream, const SparseAttention& p, const StepRow* rows, int64_t row_count) {
  if (row_count == 0) return;
  const size_t smem = static_cast<size_t>(p.hd) * sizeof(float);
  attention_kernel<<<dim3(static_cast<unsigned>(row_count), static_cast<unsigned>(p.heads)), kThreads, smem, stream>>>(
      p, rows);
  check_launch("sparse_attention");
}

void window_store(cudaStream_t stream, int64_t window_offset, const StepRow* rows, int64_t row_count, const float* kv,
                  int64_t hd, int64_t window) {
  if (row_count == 0) return;
  window_store_kernel<<<static_cast<unsigned>(row_count), kThreads, 0, stream>>>(window_offset, rows, kv, hd, window);
  check_launch("window_store");
}

}  // namespace fp4serve::cuda::ops
