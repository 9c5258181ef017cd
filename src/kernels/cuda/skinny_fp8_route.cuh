// Decode GEMM, 4-bit weights with FP8 activations and at most 8 tokens: the "FP8 route"
// (docs/kernels/skinny.md, v12). The weights feed E4M3 m16n8k32 MMAs; block scales are
// applied in fp32 to the accumulator fragments, so no scale ever touches a weight value.
//
// Conversion. An E2M1 nibble s.e1.e0.m becomes the E4M3 byte s.0.0.e1.e0.m.0.0, whose value is
// exactly the E2M1 value times 2^-6 (the subnormal 0.5 lands on the E4M3 subnormal 2^-7), so
// a word of eight nibbles costs seven integer instructions: the low nibbles of its bytes give
// one register (elements 0, 2, 4, 6), the high nibbles another (1, 3, 5, 7). The epilogue
// multiplies by 2^6.
//
// Per-block scales with one MMA per 32 k. Lane t of a quad loads 16 bytes of a row, i.e.
// one MXFP4 block or two NVFP4 blocks, so the four lanes that feed one MMA hold four
// different blocks. The activations are therefore laid out block-diagonally over the MMA's
// eight columns: column c = 2 * owner + token_offset holds token 2p + token_offset, nonzero
// only in the k-slice of lane `owner`. Each accumulator column is then one lane's block, and
// lane t's fragments (columns 2t, 2t + 1) are exactly its own blocks for two tokens: it
// multiplies them by its own scales, with no shuffles. One MMA serves two tokens; the columns
// of a row are added across the quad once per work unit (reduce_route_accumulators).
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/mma_primitives.cuh"
#include "kernels/cuda/weight_decode.cuh"

namespace fp4serve::cuda::skinny {

// The route's value of one E2M1 code relative to the reference is 2^-6; the kernels multiply
// by this factor once, at the end.
constexpr float kRouteFactor = 64.0f;
// Tokens the route takes (two pairs); more would spill at two CTAs per SM (docs/kernels/skinny.md).
constexpr int kRouteTokens = 4;

// Eight E2M1 codes (element 2j in the low nibble of byte j) -> E4M3 bytes of value * 2^-6:
// `even` holds elements 0, 2, 4, 6, `odd` holds 1, 3, 5, 7 (low byte first).
__device__ __forceinline__ void e2m1x8_to_e4m3(uint32_t w, uint32_t& even, uint32_t& odd) {
  even = ((w << 4) & 0x80808080u) | ((w << 2) & 0x1C1C1C1Cu);
  odd = (w & 0x80808080u) | ((w >> 2) & 0x1C1C1C1Cu);
}

// Row stride of the staged activations: 16 extra bytes put the two token rows that a token
// pair reads on disjoint banks.
__host__ __device__ inline int64_t route_row_bytes(int kc_max) { return static_cast<int64_t>(kc_max) + 16; }
// Eight token rows, one zero row (what lanes outside their own k-slice multiply), then
// the x scales [8][kc_max/128].
__host__ __device__ inline int64_t route_smem_bytes(int kc_max) {
  return 9 * route_row_bytes(kc_max) + 8 * static_cast<int64_t>(kc_max / 128) * 4;
}

// E4M3 activations of the 8 token rows `rows` (-1 = padding) for K range [kbeg, kbeg + kc),
// each 8-element group stored as its even elements then its odd ones (the weights' order),
// plus the zero row and the scales.
template <typename P>
__device__ void stage_route_activations(const P& p, const int* rows, int64_t kbeg, int kc, uint8_t* act,
                                        float* act_scale, int threads) {
  const int64_t row_bytes = route_row_bytes(p.kc_max);
  const int groups = kc / 8;
  for (int i = threadIdx.x; i < 9 * groups; i += threads) {
    const int j = i / groups, grp = i % groups;
    uint2 v = make_uint2(0, 0);
    if (j < 8 && rows[j] >= 0) {
      const uint2 x = __ldg(reinterpret_cast<const uint2*>(p.x + rows[j] * p.x_stride + kbeg + grp * 8));
      v = make_uint2(__byte_perm(x.x, x.y, 0x6420), __byte_perm(x.x, x.y, 0x7531));
    }
    *reinterpret_cast<uint2*>(act + j * row_bytes + grp * 8) = v;
  }
  const int blocks = kc / 128, stride = p.kc_max / 128;
  for (int i = threadIdx.x; i < 8 * blocks; i += threads) {
    const int j = i / blocks, b = i % blocks;
    act_scale[j * stride + b] = rows[j] >= 0 ? __ldg(p.x_scale + rows[j] * p.blocks_128 + kbeg / 128 + b) : 0.0f;
  }
}

// Offset in the staged activations of the row each lane reads for token pair `pair`: its
// column's token inside its own k-slice, the zero row elsewhere (column g belongs to lane g / 2
// of the quad, token 2 * pair + g % 2). 32-bit offsets keep the hot loop within its registers.
__device__ __forceinline__ uint32_t route_b_offset(int kc_max, int pair, int g, int t) {
  const int row = (g >> 1) == t ? 2 * pair + (g & 1) : 8;
  return static_cast<uint32_t>(row * route_row_bytes(kc_max) + t * 32);
}

// One 128-k step of one 16-row tile for TP token pairs. `b_rows[p]` from route_b_offset;
// `xs[2p + i]` the step's activation scales of token 2p + i. MXFP4: one E8M0 scale per lane
// and row (its block); NVFP4: two E4M3 scales (words 0-1, words 2-3).
template <bool kNvfp4, int TP>
__device__ __forceinline__ void route_tile_step(uint4 lo, uint4 hi, uint32_t scale_lo, uint32_t scale_hi,
                                                const uint8_t* act, const uint32_t (&b_rows)[4],
                                                uint32_t step_offset,
                                                const float (&xs)[8], float (&acc)[4][4]) {
  const uint32_t wlo[4] = {lo.x, lo.y, lo.z, lo.w};
  const uint32_t whi[4] = {hi.x, hi.y, hi.z, hi.w};
  // Block scales of rows g (lo) and g + 8 (hi): one per half for NVFP4.
  float s_lo[2], s_hi[2];
  if constexpr (kNvfp4) {
    const uint32_t h_lo = e4m3x2_to_f16x2(scale_lo), h_hi = e4m3x2_to_f16x2(scale_hi);
    s_lo[0] = __half2float(__ushort_as_half(static_cast<unsigned short>(h_lo & 0xFFFFu)));
    s_lo[1] = __half2float(__ushort_as_half(static_cast<unsigned short>(h_lo >> 16)));
    s_hi[0] = __half2float(__ushort_as_half(static_cast<unsigned short>(h_hi & 0xFFFFu)));
    s_hi[1] = __half2float(__ushort_as_half(static_cast<unsigned short>(h_hi >> 16)));
  } else {
    s_lo[0] = s_lo[1] = e8m0_to_float(scale_lo);
    s_hi[0] = s_hi[1] = e8m0_to_float(scale_hi);
  }
  // NVFP4 scales change after word 1, so the partial sums are folded in per half.
  constexpr int kHalves = kNvfp4 ? 2 : 1;
  constexpr int kWordsPerHalf = 4 / kHalves;
#pragma unroll
  for (int h = 0; h < kHalves; ++h) {
    float part[TP][4];
#pragma unroll
    for (int p = 0; p < TP; ++p)
#pragma unroll
      for (int i = 0; i < 4; ++i) part[p][i] = 0.0f;
#pragma unroll
    for (int jj = 0; jj < kWordsPerHalf; ++jj) {
      const int j = h * kWordsPerHalf + jj;
      uint32_t a[4];
      e2m1x8_to_e4m3(wlo[j], a[0], a[2]);
      e2m1x8_to_e4m3(whi[j], a[1], a[3]);
#pragma unroll
      for (int p = 0; p < TP; ++p) {
        // Plain loads (not asm volatile), so the compiler may issue them ahead of the MMAs.
        const uint2 bb = *reinterpret_cast<const uint2*>(act + b_rows[p] + step_offset + 8 * j);
        mma_e4m3_16x8x32(part[p], a, bb.x, bb.y);
      }
    }
    const int hs = kHalves == 2 ? h : 0;
#pragma unroll
    for (int p = 0; p < TP; ++p) {
      acc[p][0] = fmaf(part[p][0], s_lo[hs] * xs[2 * p], acc[p][0]);
      acc[p][1] = fmaf(part[p][1], s_lo[hs] * xs[2 * p + 1], acc[p][1]);
      acc[p][2] = fmaf(part[p][2], s_hi[hs] * xs[2 * p], acc[p][2]);
      acc[p][3] = fmaf(part[p][3], s_hi[hs] * xs[2 * p + 1], acc[p][3]);
    }
  }
}

// Adds each row's columns across the quad and returns them in the standard fragment layout of
// one 8-token tile (c[i] = row g + 8 * (i / 2), token 2t + i % 2), which the split-K and
// epilogue code of skinny_gemm.cuh expect.
template <int TP>
__device__ __forceinline__ void reduce_route_accumulators(float (&acc)[4][4], int t, float (&out)[4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) out[i] = 0.0f;
#pragma unroll
  for (int p = 0; p < TP; ++p)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float v = acc[p][i];
      v += __shfl_xor_sync(0xFFFFFFFFu, v, 1);
      v += __shfl_xor_sync(0xFFFFFFFFu, v, 2);
      if (p == t) out[i] = v;
    }
}

}  // namespace fp4serve::cuda::skinny
