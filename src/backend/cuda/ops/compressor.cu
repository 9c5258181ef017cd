// The CSA / HCA compressors and the indexer's compressor on the GPU (the CPU backend's compressor.cpp).
// The CPU ingests token by token; here every entry a step emits is pooled at once: its
// candidates come from the step's own rows (positions >= the run's start) or from the
// state (earlier positions), which compressor_store brings up to date after the step.
#include <cuda_runtime.h>

#include "backend/cuda/ops/device_numerics.cuh"
#include "backend/cuda/ops/ops.h"

namespace fp4serve::cuda::ops {
namespace {

constexpr int kThreads = 256;

// Candidate (position q, column col) of a pooling: its a value and its score (z + ape).
struct Candidate {
  float kv, score;
};

__device__ __forceinline__ Candidate candidate(const CompressorParams& p, const StepRow& row, const float* a,
                                               const float* z, int64_t q, int64_t col) {
  const int64_t width = (p.overlap ? 2 : 1) * p.dim;
  if (q < 0) return {0.0f, -INFINITY};
  if (q >= row.start) {
    const int64_t r = row.row_begin + (q - row.start);
    return {a[r * width + col], z[r * width + col] + p.ape[(q % p.ratio) * width + col]};
  }
  // Before the run: the window current at its start, or (overlap) the one before it.
  const bool current = q >= (row.start / p.ratio) * p.ratio;
  const int64_t state_row = (current && p.overlap ? p.ratio : 0) + q % p.ratio;
  return {row.slot[p.state.kv + state_row * width + col], row.slot[p.state.score + state_row * width + col]};
}

__global__ void emit_kernel(CompressorParams p, const StepRow* rows, const float* a, const float* z,
                            const EmittedEntry* emitted) {
  extern __shared__ float entry[];
  __shared__ float red[32];
  const EmittedEntry em = emitted[blockIdx.x];
  const StepRow row = rows[em.row];
  const int64_t r = p.ratio, d = p.dim, first = row.position + 1 - r;
  for (int64_t f = threadIdx.x; f < d; f += blockDim.x) {
    // Candidates in the reference's order: the previous window's first half, then this
    // window's (second half with overlap).
    const int64_t prev = p.overlap ? r : 0;
    float mx = -INFINITY;
    for (int64_t i = 0; i < prev; ++i) mx = fmaxf(mx, candidate(p, row, a, z, first - r + i, f).score);
    for (int64_t i = 0; i < r; ++i) mx = fmaxf(mx, candidate(p, row, a, z, first + i, prev ? d + f : f).score);
    float sum = 0.0f;
    for (int64_t i = 0; i < prev; ++i) sum += expf(candidate(p, row, a, z, first - r + i, f).score - mx);
    for (int64_t i = 0; i < r; ++i) sum += expf(candidate(p, row, a, z, first + i, prev ? d + f : f).score - mx);
    float acc = 0.0f;
    for (int64_t i = 0; i < prev; ++i) {
      const Candidate c = candidate(p, row, a, z, first - r + i, f);
      if (c.score != -INFINITY) acc += c.kv * (expf(c.score - mx) / sum);
    }
    for (int64_t i = 0; i < r; ++i) {
      const Candidate c = candidate(p, row, a, z, first + i, prev ? d + f : f);
      acc += c.kv * (expf(c.score - mx) / sum);
    }
    entry[f] = round_bf16(acc);
  }
  __syncthreads();
  float ss = 0.0f;
  for (int64_t f = threadIdx.x; f < d; f += blockDim.x) ss += entry[f] * entry[f];
  ss = block_sum(ss, red);
  const float rs = 1.0f / sqrtf(ss / static_cast<float>(d) + p.eps);
  for (int64_t f = threadIdx.x; f < d; f += blockDim.x) entry[f] = round_bf16(p.norm[f] * (entry[f] * rs));
  __syncthreads();
  const float pos = static_cast<float>(first);
  for (int64_t i = threadIdx.x; i < p.rd / 2; i += blockDim.x) {
    const float angle = pos * p.freqs[i];
    rotate_pair(entry + d - p.rd + 2 * i, cosf(angle), sinf(angle), false);
  }
  __syncthreads();
  if (p.qat) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    if (p.indexer) {
      for (int64_t h = 1; h < d; h *= 2) {
        for (int64_t q = threadIdx.x; q < d / 2; q += blockDim.x) {
          const int64_t j = (q / h) * 2 * h + q % h;
          const float x0 = entry[j], x1 = entry[j + h];
          entry[j] = x0 + x1;
          entry[j + h] = x0 - x1;
        }
        __syncthreads();
      }
      const float scale = static_cast<float>(1.0 / sqrt(static_cast<double>(d)));
      for (int64_t f = threadIdx.x; f < d; f += blockDim.x) entry[f] = round_bf16(entry[f] * scale);
      __syncthreads();
    }
    const int64_t block = p.indexer ? 32 : 64, span = p.indexer ? d : d - p.rd;
    for (int64_t b = warp * block; b < span; b += warps * block) {
      float amax = 0.0f;
      for (int64_t i = lane; i < block; i += 32) amax = fmaxf(amax, fabsf(entry[b + i]));
      amax = warp_max(amax);
      const float s = p.indexer ? pow2_ceil(fmaxf(amax, 6.0f * 0x1p-126f) * (1.0f / 6.0f))
                                : pow2_ceil(fmaxf(amax, 1e-4f) * (1.0f / 448.0f));
      const float inv = 1.0f / s;
      for (int64_t i = lane; i < block; i += 32) {
        const float q = entry[b + i] * inv;
        const float v = p.indexer ? round_e2m1(fminf(fmaxf(q, -6.0f), 6.0f)) : round_e4m3(fminf(fmaxf(q, -448.0f), 448.0f));
        entry[b + i] = round_bf16(v * s);
      }
    }
    __syncthreads();
  }
  for (int64_t f = threadIdx.x; f < d; f += blockDim.x) row.slot[p.state.entries + em.index * d + f] = entry[f];
}

// One block per run: with overlap, a window that was current at the run's start and
// completed during it moves to the previous-window rows first; then the run's own
// positions of the last complete and the current window are written.
__global__ void store_kernel(CompressorParams p, const StepRun* runs, const float* a, const float* z) {
  const StepRun run = runs[blockIdx.x];
  const int64_t r = p.ratio, width = (p.overlap ? 2 : 1) * p.dim;
  const int64_t current = run.end / r, at_start = run.start / r;
  float* kv = run.slot + p.state.kv;
  float* score = run.slot + p.state.score;
  if (p.overlap && current == at_start + 1) {
    for (int64_t q = at_start * r; q < run.start; ++q)
      for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
        kv[(q % r) * width + c] = kv[(r + q % r) * width + c];
        score[(q % r) * width + c] = score[(r + q % r) * width + c];
      }
    __syncthreads();
  }
  int64_t from = (p.overlap ? current - 1 : current) * r;
  if (from < run.start) from = run.start;
  for (int64_t q = from; q < run.end; ++q) {
    const int64_t state_row = (q >= current * r && p.overlap ? r : 0) + q % r, t = run.row_begin + (q - run.start);
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
      kv[state_row * width + c] = a[t * width + c];
      score[state_row * width + c] = z[t * width + c] + p.ape[(q % r) * width + c];
    }
  }
}

}  // namespace

void compressor_emit(cudaStream_t stream, const CompressorParams& p, const StepRow* rows, const float* a, const float* z,
                     const EmittedEntry* emitted, int64_t count) {
  if (count == 0) return;
  require(!(p.qat && p.indexer) || (p.dim & (p.dim - 1)) == 0, "compressor_emit: the indexer dim must be a power of two");
  const size_t smem = static_cast<size_t>(p.dim) * sizeof(float);
  emit_kernel<<<static_cast<unsigned>(count), kThreads, smem, stream>>>(p, rows, a, z, emitted);
  check_launch("compressor_emit");
}

void compressor_store(cudaStream_t stream, const CompressorParams& p, const StepRun* runs, int64_t run_count,
                      const float* a, const float* z) {
  if (run_count == 0) return;
  store_kernel<<<static_cast<unsigned>(run_count), kThreads, 0, stream>>>(p, runs, a, z);
  check_launch("compressor_store");
}

}  // namespace fp4serve::cuda::ops
