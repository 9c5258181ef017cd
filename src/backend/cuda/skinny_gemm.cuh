// Decode GEMM for M <= 16 tokens ("skinny"): streams every weight byte once at the memory
// bandwidth limit and multiplies on the tensor cores with the operands swapped (weight rows
// are the MMA's M dimension, tokens its N dimension of 8 or 16).
//
// Work split: a CTA of 8 warps owns 256 weight rows (MoE gate/up: 128 rows of W1 and the
// same 128 rows of W3) and one range of K; each warp owns 32 of those rows as two 16-row
// tiles and walks the whole K range. Per 64-byte step of a row, lane (g, t) loads 16 bytes
// of rows g and g + 8 of each tile with one 16-byte streaming load each, two steps (four
// loads per tile) in flight before they are multiplied. The CTA stages its activation slice
// in shared memory once, already converted to
// the MMA operand type and permuted to the order the weights arrive in (mma_primitives.cuh).
// When a matrix has too few row blocks to fill the GPU, K is split across CTAs; partial
// sums go to a scratch buffer and the last CTA to arrive adds them in split order
// (deterministic) and runs the epilogue.
//
// Per-encoding inner step (64 weight bytes of a row per quad of lanes):
//   BF16     32 k: two bf16 m16n8k16 MMAs, no scales
//   FP8      64 k: two e4m3 m16n8k32 MMAs, then acc += partial * w_scale * x_scale
//   MXFP4   128 k: decode to F16 with the per-32 scales folded in (weight_decode.cuh), eight
//                  f16 m16n8k16 MMAs, then acc += partial * 2^(r-127) * x_scale
//   NVFP4   128 k: decode to F16 with the per-16 scales folded in, eight MMAs (F16 with FP8
//                  activations, BF16 with BF16 activations); global scale in the epilogue
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "backend/cuda/kernel_args.h"
#include "backend/cuda/kernel_launchers.h"
#include "backend/cuda/mma_primitives.cuh"
#include "backend/cuda/moe_epilogue.cuh"
#include "backend/cuda/weight_decode.cuh"

namespace fp4serve::cuda::skinny {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kRowsPerCta = 256;
// Steps loaded per burst and CTAs per SM of the product kernel (docs/kernels/skinny.md records
// the versions measured: deeper register bursts spill at two CTAs per SM, cp.async rings and
// rolling prefetch were slower). The kernel takes both as template parameters so that
// bench/cuda/dev/ can build the measured alternatives.
constexpr int kStepsInFlight = 2;
constexpr int kCtasPerSm = 2;
constexpr int kPartialFloats = 16 * 256;  // split-K partials of one CTA: [16 tokens][256 row slots]

enum class Mode : int { kDense = 0, kGateUp = 1, kDown = 2 };

struct Params {
  WeightKind weight;
  const uint8_t* w[2];  // dense/down: w[0]
  const uint8_t* w_scale[2];
  const void* const* expert_w[2];
  const void* const* expert_scale[2];
  const float* expert_gs[2];
  float out_scale;  // dense: global scale (x128 for NVFP4 folded in by the launcher)
  int64_t n, k;
  const uint8_t* x;
  const float* x_scale;
  int64_t x_stride;  // elements
  int m;             // dense: tokens
  const int* act_row;
  const float* route_weight;
  const int* items;
  const int* num_items;
  int row_blocks;    // 256-row (gate/up: 128-row) blocks per matrix
  int splits;        // CTAs along K per row block
  int blocks_128;    // K / 128
  int dense_units;   // dense: row_blocks * splits
  int kc_max;        // largest K range of one split, elements (multiple of 128)
  float swiglu_limit;
  __nv_bfloat16* out;
  int64_t out_stride;
  float* partials;
  unsigned* counters;
};

template <WeightKind W>
struct Traits {
  static constexpr bool kFp4 = W == WeightKind::kMXFP4 || W == WeightKind::kNVFP4;
  static constexpr int kStepK = W == WeightKind::kFP8Block ? 64 : (W == WeightKind::kBF16 ? 32 : 128);
  static constexpr int kStepsPerBlock = 128 / kStepK;
};

// Activation bytes per element as staged in shared memory.
template <WeightKind W>
__host__ __device__ constexpr int staged_act_bytes() {
  return W == WeightKind::kFP8Block ? 1 : 2;
}

// Shared memory of one CTA: activations [tokens][kc_max] (+64 bytes per row so that the two
// token rows a quarter-warp reads fall in different banks), then x scales [tokens][kc_max/128].
__host__ __device__ inline int64_t act_row_bytes(int act_bytes, int kc_max) { return static_cast<int64_t>(kc_max) * act_bytes + 64; }
inline int64_t smem_bytes(int act_bytes, int kc_max, int token_tiles) {
  const int tokens = 8 * token_tiles;
  return tokens * act_row_bytes(act_bytes, kc_max) + static_cast<int64_t>(tokens) * (kc_max / 128) * 4;
}

__device__ __forceinline__ uint32_t low_half_splat(uint32_t v) { return (v & 0xFFFFu) | (v << 16); }
__device__ __forceinline__ uint32_t high_half_splat(uint32_t v) { return (v >> 16) | (v & 0xFFFF0000u); }


// Stages tokens [0, 8*NT) of activation rows `rows` (-1 = padding, zeros) for K range
// [kbeg, kbeg + kc) into shared memory in the layout the inner step reads.
template <WeightKind W, bool kBf16Act, int NT>
__device__ void stage_activations(const Params& p, const int* rows, int64_t kbeg, int kc, uint8_t* act,
                                  float* act_scale) {
  constexpr int kTokens = 8 * NT;
  const int64_t row_bytes = act_row_bytes(staged_act_bytes<W>(), p.kc_max);
  if constexpr (!Traits<W>::kFp4) {
    // Natural order: FP8 bytes, or bf16 elements, copied 16 bytes at a time.
    constexpr int kElemBytes = W == WeightKind::kFP8Block ? 1 : 2;
    const int chunks_per_row = kc * kElemBytes / 16;
    for (int i = threadIdx.x; i < kTokens * chunks_per_row; i += kThreads) {
      const int j = i / chunks_per_row, c = i % chunks_per_row;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (rows[j] >= 0) {
        v = __ldg(reinterpret_cast<const uint4*>(p.x + (rows[j] * p.x_stride + kbeg) * kElemBytes) + c);
      }
      *reinterpret_cast<uint4*>(act + j * row_bytes + c * 16) = v;
    }
  } else {
    // Groups of 8 elements -> 16 bytes of paired 16-bit values, at the position of the
    // (lane t, word j) that consumes them: step s = e/128 at s*256, word j at j*64, lane t at t*16.
    const int groups_per_row = kc / 8;
    for (int i = threadIdx.x; i < kTokens * groups_per_row; i += kThreads) {
      const int j = i / groups_per_row, grp = i % groups_per_row;
      const int e = grp * 8;
      uint32_t pairs[4] = {0, 0, 0, 0};
      if (rows[j] >= 0) {
        if constexpr (kBf16Act) {
          const uint4 v = __ldg(reinterpret_cast<const uint4*>(p.x + (rows[j] * p.x_stride + kbeg + e) * 2));
          const uint32_t words[4] = {v.x, v.y, v.z, v.w};
          b16x8_paired(words, pairs);
        } else {
          const uint2 v = __ldg(reinterpret_cast<const uint2*>(p.x + rows[j] * p.x_stride + kbeg + e));
          e4m3x8_to_f16x2_paired(v.x, v.y, pairs);
        }
      }
      const int offset = (e / 128) * 256 + ((e % 32) / 8) * 64 + ((e % 128) / 32) * 16;
      *reinterpret_cast<uint4*>(act + j * row_bytes + offset) = make_uint4(pairs[0], pairs[1], pairs[2], pairs[3]);
    }
  }
  if constexpr (!kBf16Act) {
    const int blocks = kc / 128, stride = p.kc_max / 128;
    for (int i = threadIdx.x; i < kTokens * blocks; i += kThreads) {
      const int j = i / blocks, b = i % blocks;
      act_scale[j * stride + b] = rows[j] >= 0 ? __ldg(p.x_scale + rows[j] * p.blocks_128 + kbeg / 128 + b) : 0.0f;
    }
  }
}

// Weight bytes and scale information of one step of one 16-row tile, for rows g and g + 8.
struct TileLoad {
  uint4 lo, hi;
  uint32_t scale_lo, scale_hi;
};

template <WeightKind W>
__device__ __forceinline__ void load_tile_step(const uint8_t* w_tile, const uint8_t* scale_tile, int64_t row_bytes,
                                               int64_t scale_stride, int64_t step, int g, int t,
                                               TileLoad& out) {
  const uint8_t* lo = w_tile + g * row_bytes + step * 64 + t * 16;
  out.lo = load_streaming_16(lo);
  out.hi = load_streaming_16(lo + 8 * row_bytes);
  if constexpr (W == WeightKind::kFP8Block) {
    // One float per (128-row block, 128-k block): rows g and g + 8 share it.
    const float* s = reinterpret_cast<const float*>(scale_tile);
    out.scale_lo = __float_as_uint(__ldg(s + (step * 64) / 128));
    out.scale_hi = out.scale_lo;
  } else if constexpr (W == WeightKind::kMXFP4) {
    const uint8_t* s = scale_tile + g * scale_stride + step * 4 + t;
    out.scale_lo = __ldg(s);
    out.scale_hi = __ldg(s + 8 * scale_stride);
  } else if constexpr (W == WeightKind::kNVFP4) {
    const uint16_t* s = reinterpret_cast<const uint16_t*>(scale_tile + g * scale_stride + step * 8 + 2 * t);
    out.scale_lo = __ldg(s);
    out.scale_hi = __ldg(reinterpret_cast<const uint16_t*>(reinterpret_cast<const uint8_t*>(s) + 8 * scale_stride));
  }
}

// acc += part x (weight scale of rows g / g + 8) x (activation scale of each token) for one
// 128-k block; c[i] of token tile nt is token nt * 8 + 2t + i % 2.
template <int NT>
__device__ __forceinline__ void promote_partial(const float (&part)[NT][4], float w_lo, float w_hi,
                                                const float* act_scale, int act_scale_stride, int local_block, int t,
                                                float (&acc)[NT][4]) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const float s0 = act_scale[(nt * 8 + 2 * t) * act_scale_stride + local_block];
    const float s1 = act_scale[(nt * 8 + 2 * t + 1) * act_scale_stride + local_block];
    acc[nt][0] += part[nt][0] * (w_lo * s0);
    acc[nt][1] += part[nt][1] * (w_lo * s1);
    acc[nt][2] += part[nt][2] * (w_hi * s0);
    acc[nt][3] += part[nt][3] * (w_hi * s1);
  }
}

// Multiplies one loaded step of one tile into `part` (or directly into acc when no
// promotion is needed) and promotes with the step's scales.
template <WeightKind W, bool kBf16Act, int NT>
__device__ __forceinline__ void compute_tile_step(const TileLoad& ld, const uint8_t* act_step, int64_t act_row_bytes,
                                                  const float* act_scale, int act_scale_stride, int local_block,
                                                  int g, int t, float (&acc)[NT][4]) {
  constexpr bool kPromote = !kBf16Act;
  float part[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int i = 0; i < 4; ++i) part[nt][i] = 0.0f;
  float(&target)[NT][4] = kPromote ? part : acc;

  if constexpr (W == WeightKind::kFP8Block || W == WeightKind::kBF16) {
    const uint32_t a0[4] = {ld.lo.x, ld.hi.x, ld.lo.y, ld.hi.y};
    const uint32_t a1[4] = {ld.lo.z, ld.hi.z, ld.lo.w, ld.hi.w};
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const uint4 xb = *reinterpret_cast<const uint4*>(act_step + (nt * 8 + g) * act_row_bytes + t * 16);
      if constexpr (W == WeightKind::kFP8Block) {
        mma_e4m3_16x8x32(target[nt], a0, xb.x, xb.y);
        mma_e4m3_16x8x32(target[nt], a1, xb.z, xb.w);
      } else {
        mma_bf16_16x8x16(target[nt], a0, xb.x, xb.y);
        mma_bf16_16x8x16(target[nt], a1, xb.z, xb.w);
      }
    }
  } else {
    // FP4: per-word F16 multipliers for rows g and g + 8.
    uint32_t mult_lo[4], mult_hi[4];
    float wmul_lo = 1.0f, wmul_hi = 1.0f;
    if constexpr (W == WeightKind::kMXFP4) {
      // The quad's four 32-blocks of a row share the reference exponent (their max).
      int ref_lo = static_cast<int>(ld.scale_lo), ref_hi = static_cast<int>(ld.scale_hi);
      ref_lo = max(ref_lo, __shfl_xor_sync(0xFFFFFFFFu, ref_lo, 1));
      ref_lo = max(ref_lo, __shfl_xor_sync(0xFFFFFFFFu, ref_lo, 2));
      ref_hi = max(ref_hi, __shfl_xor_sync(0xFFFFFFFFu, ref_hi, 1));
      ref_hi = max(ref_hi, __shfl_xor_sync(0xFFFFFFFFu, ref_hi, 2));
      const uint32_t m_lo = splat_f16(mxfp4_f16_multiplier(ref_lo - static_cast<int>(ld.scale_lo)));
      const uint32_t m_hi = splat_f16(mxfp4_f16_multiplier(ref_hi - static_cast<int>(ld.scale_hi)));
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        mult_lo[j] = m_lo;
        mult_hi[j] = m_hi;
      }
      wmul_lo = e8m0_to_float(static_cast<uint32_t>(ref_lo));
      wmul_hi = e8m0_to_float(static_cast<uint32_t>(ref_hi));
    } else {
      // Words 0-1 are the first 16-block of the lane's 32 elements, words 2-3 the second.
      const uint32_t s_lo = nvfp4_f16_multipliers(ld.scale_lo);
      const uint32_t s_hi = nvfp4_f16_multipliers(ld.scale_hi);
      mult_lo[0] = mult_lo[1] = low_half_splat(s_lo);
      mult_lo[2] = mult_lo[3] = high_half_splat(s_lo);
      mult_hi[0] = mult_hi[1] = low_half_splat(s_hi);
      mult_hi[2] = mult_hi[3] = high_half_splat(s_hi);
    }
    const uint32_t words_lo[4] = {ld.lo.x, ld.lo.y, ld.lo.z, ld.lo.w};
    const uint32_t words_hi[4] = {ld.hi.x, ld.hi.y, ld.hi.z, ld.hi.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      uint32_t plo[4], phi[4];
      e2m1x8_to_f16x2(words_lo[j], plo);
      e2m1x8_to_f16x2(words_hi[j], phi);
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        plo[q] = mul_f16x2(plo[q], mult_lo[j]);
        phi[q] = mul_f16x2(phi[q], mult_hi[j]);
        if constexpr (kBf16Act) {
          plo[q] = f16x2_to_bf16x2(plo[q]);
          phi[q] = f16x2_to_bf16x2(phi[q]);
        }
      }
      const uint32_t a0[4] = {plo[0], phi[0], plo[1], phi[1]};
      const uint32_t a1[4] = {plo[2], phi[2], plo[3], phi[3]};
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const uint4 xb = *reinterpret_cast<const uint4*>(act_step + (nt * 8 + g) * act_row_bytes + j * 64 + t * 16);
        if constexpr (kBf16Act) {
          mma_bf16_16x8x16(target[nt], a0, xb.x, xb.y);
          mma_bf16_16x8x16(target[nt], a1, xb.z, xb.w);
        } else {
          mma_f16_16x8x16(target[nt], a0, xb.x, xb.y);
          mma_f16_16x8x16(target[nt], a1, xb.z, xb.w);
        }
      }
    }
    // MXFP4: the rows' reference exponents; NVFP4: 1 (its global scale comes at the end).
    if constexpr (kPromote) promote_partial<NT>(part, wmul_lo, wmul_hi, act_scale, act_scale_stride, local_block, t, acc);
    return;
  }
  if constexpr (kPromote) {
    const float w = __uint_as_float(ld.scale_lo);
    promote_partial<NT>(part, w, w, act_scale, act_scale_stride, local_block, t, acc);
  }
}

template <WeightKind W, bool kBf16Act, int NT, Mode MODE, int kBurst = kStepsInFlight,
          int kMinCtasPerSm = kCtasPerSm>
__global__ void __launch_bounds__(kThreads, kMinCtasPerSm) skinny_gemm_kernel(const Params p) {
  using T = Traits<W>;
  extern __shared__ __align__(16) uint8_t smem[];
  __shared__ int token_rows[16];
  __shared__ int unit_item[3];
  __shared__ int is_last_split;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int64_t act_bytes_per_row = act_row_bytes(staged_act_bytes<W>(), p.kc_max);
  uint8_t* act = smem;
  float* act_scale = reinterpret_cast<float*>(smem + 8 * NT * act_bytes_per_row);
  const int act_scale_stride = p.kc_max / 128;

  const int units_per_item = p.row_blocks * p.splits;
  const int total_units = MODE == Mode::kDense ? p.dense_units : (*p.num_items) * units_per_item;
  const int64_t row_bytes = W == WeightKind::kFP8Block ? p.k : (W == WeightKind::kBF16 ? 2 * p.k : p.k / 2);
  const int64_t scale_stride = W == WeightKind::kMXFP4 ? p.k / 32 : (W == WeightKind::kNVFP4 ? p.k / 16 : 0);

  for (int unit = blockIdx.x; unit < total_units; unit += gridDim.x) {
    const int item = unit / units_per_item;
    const int rb = (unit % units_per_item) / p.splits;
    const int split = unit % p.splits;
    __syncthreads();  // the previous unit is done with shared memory
    if (threadIdx.x == 0) {
      if constexpr (MODE == Mode::kDense) {
        unit_item[0] = 0;
        unit_item[1] = 0;
        unit_item[2] = p.m;
      } else {
        unit_item[0] = p.items[3 * item];
        unit_item[1] = p.items[3 * item + 1];
        unit_item[2] = p.items[3 * item + 2];
      }
    }
    __syncthreads();
    const int expert = unit_item[0], first = unit_item[1], count = unit_item[2];
    if (threadIdx.x < 16) {
      const int j = threadIdx.x;
      int row = -1;
      if (j < count && j < 8 * NT) {
        if constexpr (MODE == Mode::kGateUp) {
          row = p.act_row[first + j];
        } else {
          row = first + j;
        }
      }
      token_rows[j] = row;
    }
    const int block_begin = static_cast<int>(static_cast<int64_t>(split) * p.blocks_128 / p.splits);
    const int block_end = static_cast<int>(static_cast<int64_t>(split + 1) * p.blocks_128 / p.splits);
    const int64_t kbeg = static_cast<int64_t>(block_begin) * 128;
    const int kc = (block_end - block_begin) * 128;
    // This warp's two 16-row tiles.
    const uint8_t* w_tile[2];
    const uint8_t* s_tile[2];
    int row0[2];
    bool valid[2];
#pragma unroll
    for (int tt = 0; tt < 2; ++tt) {
      const uint8_t* wbase;
      const uint8_t* sbase;
      if constexpr (MODE == Mode::kDense) {
        wbase = p.w[0];
        sbase = p.w_scale[0];
      } else {
        const int which = MODE == Mode::kGateUp ? tt : 0;
        wbase = static_cast<const uint8_t*>(p.expert_w[which][expert]);
        sbase = static_cast<const uint8_t*>(p.expert_scale[which][expert]);
      }
      row0[tt] = MODE == Mode::kGateUp ? rb * 128 + warp * 16 : rb * kRowsPerCta + warp * 32 + tt * 16;
      valid[tt] = row0[tt] + 16 <= p.n;
      w_tile[tt] = wbase + row0[tt] * row_bytes;
      if constexpr (W == WeightKind::kFP8Block) {
        s_tile[tt] = sbase + static_cast<int64_t>(row0[tt] / 128) * p.blocks_128 * 4;
      } else {
        s_tile[tt] = sbase ? sbase + row0[tt] * scale_stride : nullptr;
      }
    }

    float acc[2][NT][4];
#pragma unroll
    for (int tt = 0; tt < 2; ++tt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[tt][nt][i] = 0.0f;

    __syncthreads();
    stage_activations<W, kBf16Act, NT>(p, token_rows, kbeg, kc, act, act_scale);
    __syncthreads();

    const int64_t step_begin = static_cast<int64_t>(block_begin) * T::kStepsPerBlock;
    const int64_t step_end = static_cast<int64_t>(block_end) * T::kStepsPerBlock;
    for (int64_t s0 = step_begin; s0 < step_end; s0 += kBurst) {
      TileLoad ld[kBurst][2];
#pragma unroll
      for (int u = 0; u < kBurst; ++u)
#pragma unroll
        for (int tt = 0; tt < 2; ++tt)
          if (s0 + u < step_end && valid[tt])
            load_tile_step<W>(w_tile[tt], s_tile[tt], row_bytes, scale_stride, s0 + u, g, t, ld[u][tt]);
#pragma unroll
      for (int u = 0; u < kBurst; ++u) {
        const int64_t s = s0 + u;
        if (s >= step_end) break;
        const int64_t local_step = s - step_begin;
        const uint8_t* act_step = act + local_step * T::kStepK * staged_act_bytes<W>();
        const int local_block = static_cast<int>(local_step / T::kStepsPerBlock);
#pragma unroll
        for (int tt = 0; tt < 2; ++tt)
          if (valid[tt])
            compute_tile_step<W, kBf16Act, NT>(ld[u][tt], act_step, act_bytes_per_row, act_scale, act_scale_stride,
                                               local_block, g, t, acc[tt]);
      }
    }

    // Split-K: publish this split's partial sums; the last CTA of the row block adds them all.
    if (p.splits > 1) {
      // Partials as [token][CTA row slot], real tokens only (a decode step writes 1 KB, not 16).
      const int64_t tile_id = unit / p.splits;
      auto slot = [&](int64_t sp, int token, int tt, int i) {
        return p.partials + ((tile_id * p.splits + sp) * 16 + token) * kRowsPerCta + warp * 32 + tt * 16 + g +
               8 * (i >> 1);
      };
#pragma unroll
      for (int tt = 0; tt < 2; ++tt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const int token = nt * 8 + 2 * t + (i & 1);
            if (token < count) *slot(split, token, tt, i) = acc[tt][nt][i];
          }
      __threadfence();
      __syncthreads();
      if (threadIdx.x == 0) {
        const unsigned arrived = atomicAdd(p.counters + tile_id, 1u);
        is_last_split = arrived == static_cast<unsigned>(p.splits - 1);
      }
      __syncthreads();
      if (!is_last_split) continue;
      __threadfence();
#pragma unroll
      for (int tt = 0; tt < 2; ++tt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const int token = nt * 8 + 2 * t + (i & 1);
            float sum = 0.0f;
            if (token < count)
              for (int sp = 0; sp < p.splits; ++sp) sum += __ldcg(slot(sp, token, tt, i));
            acc[tt][nt][i] = sum;
          }
      if (threadIdx.x == 0) p.counters[tile_id] = 0;
    }

    // Epilogue: c[i] is (row g + 8*(i/2), token 2t + i%2) of each tile and token tile.
    const float nv_factor = W == WeightKind::kNVFP4 ? 128.0f : 1.0f;
    if constexpr (MODE == Mode::kGateUp) {
      if (!valid[0]) continue;
      const float gs_gate = (p.expert_gs[0] ? p.expert_gs[0][expert] : 1.0f) * nv_factor;
      const float gs_up = (p.expert_gs[1] ? p.expert_gs[1][expert] : 1.0f) * nv_factor;
      const float limit = p.swiglu_limit;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int token = nt * 8 + 2 * t + (i & 1);
          if (token >= count) continue;
          const int row = row0[0] + g + 8 * (i >> 1);
          const float h =
              swiglu_hidden(acc[0][nt][i], acc[1][nt][i], gs_gate, gs_up, limit, p.route_weight[first + token]);
          p.out[static_cast<int64_t>(first + token) * p.out_stride + row] = __float2bfloat16_rn(h);
        }
    } else {
      float scale = p.out_scale;
      if constexpr (MODE == Mode::kDown) scale = (p.expert_gs[0] ? p.expert_gs[0][expert] : 1.0f) * nv_factor;
#pragma unroll
      for (int tt = 0; tt < 2; ++tt) {
        if (!valid[tt]) continue;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const int token = nt * 8 + 2 * t + (i & 1);
            if (token >= count) continue;
            const int row = row0[tt] + g + 8 * (i >> 1);
            p.out[static_cast<int64_t>(first + token) * p.out_stride + row] = __float2bfloat16_rn(acc[tt][nt][i] * scale);
          }
      }
    }
  }
}

// The parameters of a dense launch of `plan`.
inline Params dense_params(const DenseGemmArgs& a, const SkinnyPlan& plan, const Scratch& scratch) {
  Params p{};
  p.weight = a.weight;
  p.w[0] = static_cast<const uint8_t*>(a.w);
  p.w_scale[0] = static_cast<const uint8_t*>(a.w_scale);
  p.out_scale = a.global_scale * (a.weight == WeightKind::kNVFP4 ? 128.0f : 1.0f);
  p.n = a.n;
  p.k = a.k;
  p.x = static_cast<const uint8_t*>(a.x);
  p.x_scale = a.x_scale;
  p.x_stride = a.x_stride;
  p.m = static_cast<int>(a.m);
  p.row_blocks = plan.row_blocks;
  p.splits = plan.splits;
  p.blocks_128 = static_cast<int>(a.k / 128);
  p.dense_units = plan.row_blocks * plan.splits;
  p.kc_max = plan.kc_max;
  p.out = static_cast<__nv_bfloat16*>(a.y);
  p.out_stride = a.y_stride;
  p.partials = scratch.partials;
  p.counters = scratch.counters;
  return p;
}

// Launches `fn` (an instantiation of skinny_gemm_kernel) as `plan` says.
inline cudaError_t launch_kernel(void (*fn)(const Params), const Params& p, const SkinnyPlan& plan,
                                 cudaStream_t stream) {
  if (fn == nullptr) return cudaErrorInvalidValue;
  if (plan.grid == 0) return cudaSuccess;
  if (plan.smem_bytes > 48 * 1024) {
    const cudaError_t e =
        cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(plan.smem_bytes));
    if (e != cudaSuccess) return e;
  }
  fn<<<plan.grid, kThreads, plan.smem_bytes, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace fp4serve::cuda::skinny
