// Decode GEMM kernels on Hopper's FP8 tensor cores (wgmma) for FP8 block-128 weights (M <= 16
// tokens), MXFP4 (M <= 8) and NVFP4 (M <= 4) with FP8 activations; the 4-bit section below says how
// their weights become E4M3 and where their scales go. FP8:
// sm_90 has no FP8 `mma.sync` (ptxas turns it into F16 conversions + HMMA, skinny.md v12-v13),
// so this kernel swaps the operands onto `wgmma`: the weight rows are its M dimension (64 rows
// per warpgroup), the tokens its N (8 or 16, zero-padded). The weights go straight from the
// loads into wgmma's A registers, unconverted; the activations are the B operand in shared
// memory, staged once per CTA in the k order the weight bytes arrive in.
//
// Work split: a CTA of two warpgroups owns 128 weight rows (one FP8 scale row block) and a
// range of 128-k blocks. Per block, lane (g, t) of warp w loads 16 bytes at k = t*16 and 16 at
// k = 64 + t*16 of rows 16w + g and 16w + g + 8 (four 16-byte streaming loads, a burst of a
// few blocks in flight), then issues four m64nNk32 wgmmas, two per fp32 partial (the tensor
// core's own accumulation stays short), and promotes the partials with w_scale x x_scale.
// Split-K as in skinny_gemm.cuh: partials to scratch, the last CTA adds them in split order
// (deterministic).
//
// A register layout of one m64nNk32 wgmma (per warp, as mma.sync m16n8k32): a[0] = row g,
// logical k 4t..4t+3; a[1] = row g+8, same k; a[2] = row g, k 16+4t..; a[3] = row g+8. Wgmma j
// (0..3) of a block takes bytes 8j..8j+7 of the lane's 32 loaded bytes P of each row, so
// logical k (4t + i) is P[8j + i] and (16 + 4t + i) is P[8j + 4 + i]; the staging below places
// each activation byte at the logical position of the weight byte it multiplies.
//
// skinny_wgmma.cu instantiates the product's kernels, plans and launches them; the variants of
// bench/cuda/dev/ instantiate others from this header.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/kernel_launchers.h"
#include "backend/cuda/mma_primitives.cuh"
#include "backend/cuda/weight_decode.cuh"
#include "backend/cuda/wgmma_primitives.cuh"

namespace fp4serve::cuda::wgmma_decode {

constexpr int kThreads = 256;
constexpr int kRowsPerCta = 128;
constexpr int kCtasPerSm = 2;
// 128-k blocks loaded per burst with 8 tokens (48 registers of weights in flight per lane); 16
// tokens hold twice the partials and take half the burst to stay within 128 registers (two CTAs
// per SM). The kernels take the burst as a template parameter so that bench/cuda/dev/ can build
// the variants docs/kernels/skinny.md measured; the product runs kBurst8.
constexpr int kBurst8 = 3;
template <int kTokens, int kBurst8Tokens>
constexpr int burst() {
  return kTokens == 8 ? kBurst8Tokens : (kBurst8Tokens + 1) / 2;
}
constexpr int kPartialFloats = 16 * kRowsPerCta;  // split-K partials of one CTA: [16 tokens][128 rows]
constexpr int kKcCap = 4096;                      // K elements staged per CTA at most

struct Params {
  const uint8_t* w;
  const void* w_scale;  // FP8: float [ceil(n/128), k/128]; MXFP4: E8M0 [n, k/32]; NVFP4: E4M3 [n, k/16]
  int64_t n, k;
  const uint8_t* x;
  const float* x_scale;  // [m, k/128]
  int64_t x_stride;
  int m;
  int blocks_128;
  int splits;
  int kc_max;
  __nv_bfloat16* out;
  int64_t out_stride;
  float out_scale;
  float* partials;
  unsigned* counters;
};

// Bytes of one k32 B tile: kTokens rows of 32 bytes as two 8- or 16-row core-matrix columns.
template <int kTokens>
constexpr int b_tile_bytes() {
  return kTokens * 32;
}
template <int kTokens>
int64_t smem_bytes(int kc_max) {
  return static_cast<int64_t>(kc_max / 32) * b_tile_bytes<kTokens>() +
         static_cast<int64_t>(kTokens) * (kc_max / 128) * 4;
}

// Offset, within its 128-k block, of the 4 activation bytes that logical k 16c + 4t .. +3 of
// wgmma j multiplies (see the file comment: P index 8j + 4c, lane t).
__device__ __forceinline__ int staged_source_offset(int j, int c, int t) {
  const int p = 8 * j + 4 * c;
  return p < 16 ? t * 16 + p : 64 + t * 16 + (p - 16);
}

template <int kTokens>
__device__ void stage(const Params& p, int64_t kbeg, int blocks, uint8_t* act, float* act_scale) {
  // One 4-byte word per (block, token, j, c, t): 32 words per token and block.
  for (int i = threadIdx.x; i < blocks * kTokens * 32; i += kThreads) {
    const int b = i / (kTokens * 32), r = i % (kTokens * 32);
    const int tok = r / 32, word = r % 32;
    const int j = word / 8, c = (word / 4) % 2, t = word % 4;
    uint32_t v = 0;
    if (tok < p.m) {
      const uint8_t* src = p.x + tok * p.x_stride + kbeg + b * 128 + staged_source_offset(j, c, t);
      v = __ldg(reinterpret_cast<const uint32_t*>(src));
    }
    *reinterpret_cast<uint32_t*>(act + (b * 4 + j) * b_tile_bytes<kTokens>() + c * kTokens * 16 + tok * 16 + t * 4) = v;
  }
  const int stride = p.kc_max / 128;
  for (int i = threadIdx.x; i < kTokens * blocks; i += kThreads) {
    const int tok = i / blocks, b = i % blocks;
    act_scale[tok * stride + b] = tok < p.m ? __ldg(p.x_scale + tok * p.blocks_128 + kbeg / 128 + b) : 0.0f;
  }
}

template <int kTokens>
__device__ __forceinline__ void wgmma_block_step(float (&d)[kTokens / 2], const uint32_t (&a)[4], uint64_t desc,
                                                 int accumulate) {
  if constexpr (kTokens == 8) {
    wgmma_m64n8k32_e4m3_rs(d, a, desc, accumulate);
  } else {
    wgmma_m64n16k32_e4m3_rs(d, a, desc, accumulate);
  }
}

// Split-K: publishes this CTA's partial sums; the last CTA of the row block adds them in split
// order and stores bf16 outputs. Accumulator register i of a lane (g, t): row g + 8 * ((i % 4)
// / 2), token 8 * (i / 4) + 2t + i % 2.
template <int kTokens>
__device__ void reduce_and_store(const Params& p, int rb, int split, int warp, int g, int t, int64_t row_lo,
                                 float (&acc)[kTokens / 2]) {
  constexpr int kAcc = kTokens / 2;
  __shared__ int is_last_split;
  if (p.splits > 1) {
    auto slot = [&](int sp, int tok, int i) {
      return p.partials + ((static_cast<int64_t>(rb) * p.splits + sp) * 16 + tok) * kRowsPerCta + warp * 16 + g +
             8 * ((i % 4) / 2);
    };
#pragma unroll
    for (int i = 0; i < kAcc; ++i) {
      const int tok = 8 * (i / 4) + 2 * t + i % 2;
      if (tok < p.m) *slot(split, tok, i) = acc[i];
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
      const unsigned arrived = atomicAdd(p.counters + rb, 1u);
      is_last_split = arrived == static_cast<unsigned>(p.splits - 1);
    }
    __syncthreads();
    if (!is_last_split) return;
    __threadfence();
#pragma unroll
    for (int i = 0; i < kAcc; ++i) {
      const int tok = 8 * (i / 4) + 2 * t + i % 2;
      float sum = 0.0f;
      if (tok < p.m)
        for (int sp = 0; sp < p.splits; ++sp) sum += __ldcg(slot(sp, tok, i));
      acc[i] = sum;
    }
    if (threadIdx.x == 0) p.counters[rb] = 0;
  }
#pragma unroll
  for (int i = 0; i < kAcc; ++i) {
    const int tok = 8 * (i / 4) + 2 * t + i % 2;
    const int64_t row = row_lo + 8 * ((i % 4) / 2);
    if (tok < p.m && row < p.n) p.out[tok * p.out_stride + row] = __float2bfloat16_rn(acc[i] * p.out_scale);
  }
}

// Accumulator register i of a lane (g, t): row g + 8 * ((i % 4) / 2), token 8 * (i / 4) + 2t + i % 2.
// kPrefetch: the next burst's loads are issued while this burst's wgmmas run (twice the
// registers in flight; the product does not, skinny.md v15).
template <int kTokens, int kBurst8Tokens = kBurst8, bool kPrefetch = false>
__global__ void __launch_bounds__(kThreads, kCtasPerSm) wgmma_decode_fp8_kernel(const Params p) {
  constexpr int kAcc = kTokens / 2;
  constexpr int kBurst = burst<kTokens, kBurst8Tokens>();
  extern __shared__ __align__(128) uint8_t smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int rb = blockIdx.x / p.splits, split = blockIdx.x % p.splits;
  const int block_begin = static_cast<int>(static_cast<int64_t>(split) * p.blocks_128 / p.splits);
  const int block_end = static_cast<int>(static_cast<int64_t>(split + 1) * p.blocks_128 / p.splits);
  const int64_t kbeg = static_cast<int64_t>(block_begin) * 128;
  uint8_t* act = smem;
  float* act_scale = reinterpret_cast<float*>(smem + static_cast<int64_t>(p.kc_max / 32) * b_tile_bytes<kTokens>());
  const int scale_stride = p.kc_max / 128;

  const int64_t row_lo = static_cast<int64_t>(rb) * kRowsPerCta + warp * 16 + g;
  const bool lo_ok = row_lo < p.n, hi_ok = row_lo + 8 < p.n;
  const uint8_t* w_lo = p.w + (lo_ok ? row_lo : 0) * p.k;
  const uint8_t* w_hi = p.w + (hi_ok ? row_lo + 8 : 0) * p.k;
  const float* w_scale = static_cast<const float*>(p.w_scale) + static_cast<int64_t>(rb) * p.blocks_128;

  stage<kTokens>(p, kbeg, block_end - block_begin, act, act_scale);
  __syncthreads();
  const uint32_t act_base = shared_u32(act);

  float acc[kAcc];
#pragma unroll
  for (int i = 0; i < kAcc; ++i) acc[i] = 0.0f;

  // Loads of one burst: 16 bytes at k = t*16 and at 64 + t*16 of rows g and g + 8 per block.
  auto load_burst = [&](int b0, uint4 (&lo)[kBurst][2], uint4 (&hi)[kBurst][2]) {
#pragma unroll
    for (int u = 0; u < kBurst; ++u) {
      const int64_t off = static_cast<int64_t>(b0 + u) * 128 + t * 16;
      const bool in = b0 + u < block_end;
#pragma unroll
      for (int s = 0; s < 2; ++s) {
        lo[u][s] = in && lo_ok ? load_streaming_16(w_lo + off + 64 * s) : make_uint4(0, 0, 0, 0);
        hi[u][s] = in && hi_ok ? load_streaming_16(w_hi + off + 64 * s) : make_uint4(0, 0, 0, 0);
      }
    }
  };
  // Multiplies the burst at b0 (already loaded) and, with kPrefetch, loads the next burst into
  // the other buffer while the wgmmas run (no register moves between them: ptxas serialises
  // wgmmas whose input registers are written inside the pipeline stage).
  auto run_burst = [&](int b0, const uint4 (&lo)[kBurst][2], const uint4 (&hi)[kBurst][2], uint4 (&next_lo)[kBurst][2],
                       uint4 (&next_hi)[kBurst][2]) {
    // Two wgmmas (64 k) per fp32 partial: the tensor core's FP8 accumulation keeps about 14
    // bits and is cut again at each chained wgmma (chains of four, as on the prefill path,
    // landed single decode outputs up to 2.1x past the parity bound; docs/kernels/skinny.md v15).
    float part[kBurst][2][kAcc];
    wgmma_fence();
#pragma unroll
    for (int u = 0; u < kBurst; ++u) {
      if (b0 + u >= block_end) break;
      const uint32_t tiles = act_base + (b0 + u - block_begin) * 4 * b_tile_bytes<kTokens>();
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const uint4& l = lo[u][j / 2];
        const uint4& h = hi[u][j / 2];
        const uint32_t a[4] = {j % 2 ? l.z : l.x, j % 2 ? h.z : h.x, j % 2 ? l.w : l.y, j % 2 ? h.w : h.y};
        const uint64_t desc = interleaved_descriptor(tiles + j * b_tile_bytes<kTokens>(), kTokens * 16, 128);
        wgmma_block_step<kTokens>(part[u][j / 2], a, desc, j % 2);
      }
    }
    wgmma_commit();
    if constexpr (kPrefetch) load_burst(b0 + kBurst, next_lo, next_hi);
    wgmma_wait<0>();
#pragma unroll
    for (int u = 0; u < kBurst; ++u) {
      if (b0 + u >= block_end) break;
      const int local = b0 + u - block_begin;
      const float ws = __ldg(w_scale + b0 + u);
#pragma unroll
      for (int i = 0; i < kAcc; ++i) {
        pin_register(part[u][0][i]);
        pin_register(part[u][1][i]);
        const int tok = 8 * (i / 4) + 2 * t + i % 2;
        acc[i] += (part[u][0][i] + part[u][1][i]) * (ws * act_scale[tok * scale_stride + local]);
      }
    }
  };
  uint4 lo_a[kBurst][2], hi_a[kBurst][2], lo_b[kBurst][2], hi_b[kBurst][2];
  if constexpr (kPrefetch) {
    load_burst(block_begin, lo_a, hi_a);
    for (int b0 = block_begin; b0 < block_end; b0 += 2 * kBurst) {
      run_burst(b0, lo_a, hi_a, lo_b, hi_b);
      if (b0 + kBurst < block_end) run_burst(b0 + kBurst, lo_b, hi_b, lo_a, hi_a);
    }
  } else {
    for (int b0 = block_begin; b0 < block_end; b0 += kBurst) {
      load_burst(b0, lo_a, hi_a);
      run_burst(b0, lo_a, hi_a, lo_b, hi_b);
    }
  }

  reduce_and_store<kTokens>(p, rb, split, warp, g, t, row_lo, acc);
}

// ---- MXFP4 ----------------------------------------------------------------------------------
// Same scheme for MXFP4 weights with FP8 activations. A lane's 16-byte load of a row's 64-byte
// chunk (128 k) is one whole 32-block; a quad transpose of 4-byte words (two shfl.xor stages)
// gives lane t word t of every block, so wgmma j of a 128-k block holds exactly block j of each
// row, whose E8M0 scale is applied to that wgmma's own fp32 partial (exact: a power of two). Each
// word of 8 E2M1 codes becomes two E4M3 registers by bit moves (value x 2^-6, exact): the codes
// of its even elements are a[0]/a[1] (logical k 4t..4t+3), the odd ones a[2]/a[3] (16 + 4t..).
//
// NVFP4 (up to 4 tokens): the scales (E4M3, per 16) are not powers of two and E2M1 x scale does
// not fit E4M3, so they too go on in fp32, per 16-block. After the transpose, lanes t = 0, 1 of
// a quad hold the first 16-block of wgmma j's 32 and lanes 2, 3 the second; the B operand is
// block-diagonal: column h*4 + n is token n's activations at the k of 16-block h and zero at
// the others, so accumulator column h*4 + n sums one 16-block. Lane t's columns 2t, 2t + 1 are
// block h = t/2 of tokens 2(t%2), 2(t%2) + 1; lanes t and t^2 add their halves at the end.
constexpr int kFp4Burst = 2;

// The E4M3 value of the low byte (exact through F16).
__device__ __forceinline__ float e4m3_to_float(uint32_t byte) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(e4m3x2_to_f16x2(byte & 0xFFu))));
}

__device__ __forceinline__ void e2m1x8_to_e4m3(uint32_t w, uint32_t& even, uint32_t& odd) {
  even = ((w << 2) & 0x1C1C1C1Cu) | ((w << 4) & 0x80808080u);
  odd = ((w >> 2) & 0x1C1C1C1Cu) | (w & 0x80808080u);
}

// 4 x 4 transpose of words across the quad: lane t ends with word t of lane j's w in w[j]. Two
// stages, each swapping one bit of the lane index with the same bit of the word index.
__device__ __forceinline__ void quad_transpose(uint32_t (&w)[4], int t) {
#pragma unroll
  for (int m = 0; m < 2; ++m) {
    const bool odd = t & 1;
    const uint32_t recv = __shfl_xor_sync(0xFFFFFFFFu, odd ? w[2 * m] : w[2 * m + 1], 1);
    if (odd) {
      w[2 * m] = recv;
    } else {
      w[2 * m + 1] = recv;
    }
  }
#pragma unroll
  for (int m = 0; m < 2; ++m) {
    const bool high = t & 2;
    const uint32_t recv = __shfl_xor_sync(0xFFFFFFFFu, high ? w[m] : w[m + 2], 2);
    if (high) {
      w[m] = recv;
    } else {
      w[m + 2] = recv;
    }
  }
}

// Activations for the MXFP4 kernel: logical k 4t + i of wgmma j is element 8t + 2i of block j
// (core matrix 0), 16 + 4t + i is element 8t + 2i + 1 (core matrix 1).
template <WeightKind W, int kTokens>
__device__ void stage_fp4(const Params& p, int64_t kbeg, int blocks, uint8_t* act, float* act_scale) {
  for (int i = threadIdx.x; i < blocks * kTokens * 16; i += kThreads) {
    const int b = i / (kTokens * 16), r = i % (kTokens * 16);
    const int col = r / 16, j = (r % 16) / 4, t = r % 4;
    // MXFP4: column = token. NVFP4: column h*4 + n holds token n where lane t's k is in block h.
    const int tok = W == WeightKind::kNVFP4 ? col % 4 : col;
    const bool used = W == WeightKind::kNVFP4 ? col / 4 == t / 2 : true;
    uint2 v = make_uint2(0, 0);
    if (used && tok < p.m) {
      v = __ldg(reinterpret_cast<const uint2*>(p.x + tok * p.x_stride + kbeg + b * 128 + j * 32 + 8 * t));
    }
    uint8_t* tile = act + (b * 4 + j) * b_tile_bytes<kTokens>() + col * 16 + t * 4;
    *reinterpret_cast<uint32_t*>(tile) = __byte_perm(v.x, v.y, 0x6420);
    *reinterpret_cast<uint32_t*>(tile + kTokens * 16) = __byte_perm(v.x, v.y, 0x7531);
  }
  const int stride = p.kc_max / 128;
  for (int i = threadIdx.x; i < kTokens * blocks; i += kThreads) {
    const int tok = i / blocks, b = i % blocks;
    act_scale[tok * stride + b] = tok < p.m ? __ldg(p.x_scale + tok * p.blocks_128 + kbeg / 128 + b) : 0.0f;
  }
}

template <WeightKind W, int kTokens>
__global__ void __launch_bounds__(kThreads, kCtasPerSm) wgmma_decode_fp4_kernel(const Params p) {
  constexpr bool kNv = W == WeightKind::kNVFP4;
  constexpr int kAcc = kTokens / 2;
  constexpr int kBurst = kFp4Burst;
  extern __shared__ __align__(128) uint8_t smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int rb = blockIdx.x / p.splits, split = blockIdx.x % p.splits;
  const int block_begin = static_cast<int>(static_cast<int64_t>(split) * p.blocks_128 / p.splits);
  const int block_end = static_cast<int>(static_cast<int64_t>(split + 1) * p.blocks_128 / p.splits);
  const int64_t kbeg = static_cast<int64_t>(block_begin) * 128;
  uint8_t* act = smem;
  float* act_scale = reinterpret_cast<float*>(smem + static_cast<int64_t>(p.kc_max / 32) * b_tile_bytes<kTokens>());
  const int scale_stride = p.kc_max / 128;

  const int64_t row_lo = static_cast<int64_t>(rb) * kRowsPerCta + warp * 16 + g;
  const bool lo_ok = row_lo < p.n, hi_ok = row_lo + 8 < p.n;
  const int64_t row_bytes = p.k / 2, scale_row = kNv ? p.k / 16 : p.k / 32;
  const uint8_t* w_lo = p.w + (lo_ok ? row_lo : 0) * row_bytes;
  const uint8_t* w_hi = p.w + (hi_ok ? row_lo + 8 : 0) * row_bytes;
  const uint8_t* scales = static_cast<const uint8_t*>(p.w_scale);
  const uint8_t* s_lo = scales + (lo_ok ? row_lo : 0) * scale_row;
  const uint8_t* s_hi = scales + (hi_ok ? row_lo + 8 : 0) * scale_row;

  stage_fp4<W, kTokens>(p, kbeg, block_end - block_begin, act, act_scale);
  __syncthreads();
  const uint32_t act_base = shared_u32(act);

  float acc[kAcc];
#pragma unroll
  for (int i = 0; i < kAcc; ++i) acc[i] = 0.0f;

  for (int b0 = block_begin; b0 < block_end; b0 += kBurst) {
    uint4 lo[kBurst], hi[kBurst];
    uint32_t sc_lo[kBurst], sc_hi[kBurst];
#pragma unroll
    for (int u = 0; u < kBurst; ++u) {
      const bool in = b0 + u < block_end;
      const int64_t off = static_cast<int64_t>(b0 + u) * 64 + t * 16;
      lo[u] = in && lo_ok ? load_streaming_16(w_lo + off) : make_uint4(0, 0, 0, 0);
      hi[u] = in && hi_ok ? load_streaming_16(w_hi + off) : make_uint4(0, 0, 0, 0);
      if constexpr (kNv) {
        // The 8 scale bytes of the block; this lane's are those of 16-block t/2 of each k32.
        const uint32_t pick = t / 2 ? 0x7531u : 0x6420u;
        const uint2 l = in && lo_ok ? __ldg(reinterpret_cast<const uint2*>(s_lo + (b0 + u) * 8)) : make_uint2(0, 0);
        const uint2 h = in && hi_ok ? __ldg(reinterpret_cast<const uint2*>(s_hi + (b0 + u) * 8)) : make_uint2(0, 0);
        sc_lo[u] = __byte_perm(l.x, l.y, pick);
        sc_hi[u] = __byte_perm(h.x, h.y, pick);
      } else {
        sc_lo[u] = in && lo_ok ? __ldg(reinterpret_cast<const uint32_t*>(s_lo + (b0 + u) * 4)) : 0u;
        sc_hi[u] = in && hi_ok ? __ldg(reinterpret_cast<const uint32_t*>(s_hi + (b0 + u) * 4)) : 0u;
      }
    }
    // All A fragments of the burst are built before the first wgmma (ptxas serialises wgmmas
    // whose input registers are written between them).
    uint32_t a[kBurst][4][4];
#pragma unroll
    for (int u = 0; u < kBurst; ++u) {
      uint32_t wl[4] = {lo[u].x, lo[u].y, lo[u].z, lo[u].w};
      uint32_t wh[4] = {hi[u].x, hi[u].y, hi[u].z, hi[u].w};
      quad_transpose(wl, t);
      quad_transpose(wh, t);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        e2m1x8_to_e4m3(wl[j], a[u][j][0], a[u][j][2]);
        e2m1x8_to_e4m3(wh[j], a[u][j][1], a[u][j][3]);
      }
    }
    float part[kBurst][4][kAcc];
    wgmma_fence();
#pragma unroll
    for (int u = 0; u < kBurst; ++u) {
      if (b0 + u >= block_end) break;
      const uint32_t tiles = act_base + (b0 + u - block_begin) * 4 * b_tile_bytes<kTokens>();
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const uint64_t desc = interleaved_descriptor(tiles + j * b_tile_bytes<kTokens>(), kTokens * 16, 128);
        wgmma_block_step<kTokens>(part[u][j], a[u][j], desc, 0);
      }
    }
    wgmma_commit();
    wgmma_wait<0>();
#pragma unroll
    for (int u = 0; u < kBurst; ++u) {
      if (b0 + u >= block_end) break;
      const int local = b0 + u - block_begin;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        // x 2^6 undoes the conversion's 2^-6.
        float w_row[2];
        if constexpr (kNv) {
          w_row[0] = e4m3_to_float(sc_lo[u] >> (8 * j)) * 64.0f;
          w_row[1] = e4m3_to_float(sc_hi[u] >> (8 * j)) * 64.0f;
        } else {
          w_row[0] = e8m0_to_float((sc_lo[u] >> (8 * j)) & 0xFFu) * 64.0f;
          w_row[1] = e8m0_to_float((sc_hi[u] >> (8 * j)) & 0xFFu) * 64.0f;
        }
#pragma unroll
        for (int i = 0; i < kAcc; ++i) {
          pin_register(part[u][j][i]);
          const int tok = kNv ? 2 * (t % 2) + i % 2 : 8 * (i / 4) + 2 * t + i % 2;
          acc[i] += part[u][j][i] * (w_row[(i % 4) / 2] * act_scale[tok * scale_stride + local]);
        }
      }
    }
  }
  if constexpr (kNv) {
    // Lanes t and t^2 hold the two 16-blocks of the same tokens; lanes 0 and 1 then hold
    // tokens 0-3 in reduce_and_store's layout, lanes 2 and 3 "tokens 4-7" (>= m, not stored).
#pragma unroll
    for (int i = 0; i < kAcc; ++i) acc[i] += __shfl_xor_sync(0xFFFFFFFFu, acc[i], 2);
  }
  reduce_and_store<kTokens>(p, rb, split, warp, g, t, row_lo, acc);
}

// The kernels' parameters for one launch of `plan`.
inline Params make_params(const DenseGemmArgs& a, const SkinnyPlan& plan, const Scratch& scratch) {
  Params p{};
  p.w = static_cast<const uint8_t*>(a.w);
  p.w_scale = a.w_scale;
  p.n = a.n;
  p.k = a.k;
  p.x = static_cast<const uint8_t*>(a.x);
  p.x_scale = a.x_scale;
  p.x_stride = a.x_stride;
  p.m = static_cast<int>(a.m);
  p.blocks_128 = static_cast<int>(a.k / 128);
  p.splits = plan.splits;
  p.kc_max = plan.kc_max;
  p.out = static_cast<__nv_bfloat16*>(a.y);
  p.out_stride = a.y_stride;
  p.out_scale = a.global_scale;
  p.partials = scratch.partials;
  p.counters = scratch.counters;
  return p;
}

// Launches `fn` (an instantiation of one of the kernels above) as `plan` says.
inline cudaError_t launch_kernel(void (*fn)(const Params), const Params& p, const SkinnyPlan& plan,
                                 cudaStream_t stream) {
  if (plan.grid == 0) return cudaSuccess;
  if (plan.smem_bytes > 48 * 1024) {
    const cudaError_t e =
        cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(plan.smem_bytes));
    if (e != cudaSuccess) return e;
  }
  fn<<<plan.grid, kThreads, plan.smem_bytes, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace fp4serve::cuda::wgmma_decode
