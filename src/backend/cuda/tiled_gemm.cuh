// Prefill GEMM for M > 16: 128 x 128 output tiles per CTA of 8 warps (2 x 4, 64 x 32 each),
// a K tile of 128 elements per pipeline stage (BF16 x BF16: 64), 4 stages of cp.async.
//   FP8 block  e4m3 m16n8k32 MMAs on operands loaded with ldmatrix; per 128-k promotion
//              acc += partial * x_scale[m] * w_scale (DeepGEMM's scheme, on mma.sync)
//   BF16       bf16 m16n8k16 MMAs, fp32 accumulation, no scales
//   MXFP4/NVFP4 (FP8 activations) the packed weights stay 4-bit in shared memory; each thread
//              decodes its B fragments to F16 with the block scales folded in exactly
//              (weight_decode.cuh) and converts its A fragments E4M3 -> F16 (exact); f16
//              m16n8k16 MMAs; per 128-k promotion with x_scale (and 2^(r-127) for MXFP4)
//   NVFP4 with BF16 activations: the same decode, converted to BF16, bf16 MMAs, no promotion
// MoE variants gather activation rows by index; gate/up tiles interleave W1 and W3 rows per
// 8 so that one thread holds the gate and the up value of the same output and applies SwiGLU.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "backend/cuda/kernel_args.h"
#include "backend/cuda/mma_primitives.cuh"
#include "backend/cuda/moe_epilogue.cuh"
#include "backend/cuda/weight_decode.cuh"

namespace fp4serve::cuda::tiled {

constexpr int kThreads = 256;
constexpr int kTileM = 128;
constexpr int kTileN = 128;
constexpr int kStages = 4;

enum class Mode : int { kDense = 0, kGateUp = 1, kDown = 2 };

struct Params {
  const uint8_t* w;  // dense
  const uint8_t* w_scale;
  const void* const* expert_w[2];
  const void* const* expert_scale[2];
  const float* expert_gs[2];
  float out_scale;
  int64_t m, n, k;
  const uint8_t* x;
  const float* x_scale;
  int64_t x_stride;
  const int* act_row;
  const float* route_weight;
  const int* items;
  const int* num_items;
  int n_tiles;
  float swiglu_limit;
  __nv_bfloat16* out;
  int64_t out_stride;
};

template <WeightKind W, bool kBf16Act>
struct Config {
  static constexpr bool kFp4 = W == WeightKind::kMXFP4 || W == WeightKind::kNVFP4;
  static constexpr int kBK = (W == WeightKind::kBF16) ? 64 : 128;
  static constexpr int kActBytes = kBf16Act ? 2 : 1;
  static constexpr int kARowBytes = kBK * kActBytes;
  static constexpr int kBRowBytes = W == WeightKind::kBF16 ? 128 : (kFp4 ? kBK / 2 : kBK);
  static constexpr int kAScaleBytes = kBf16Act ? 0 : kTileM * 4;
  static constexpr int kBScaleBytes =
      W == WeightKind::kFP8Block ? 16 : (W == WeightKind::kMXFP4 ? kTileN * 4 : (W == WeightKind::kNVFP4 ? kTileN * 8 : 0));
  static constexpr int kStageBytes = kTileM * kARowBytes + kTileN * kBRowBytes + kAScaleBytes + kBScaleBytes;
  static constexpr int kSmemBytes = kStages * kStageBytes;
  static constexpr bool kPromote = !kBf16Act;
};

// Byte offset of 16-byte chunk `chunk` of row `row` in a swizzled tile (rows of 128/256 bytes).
__device__ __forceinline__ int swizzled(int row, int chunk, int row_bytes) {
  return row * row_bytes + ((chunk ^ (row & 7)) << 4);
}


template <WeightKind W, bool kBf16Act, Mode MODE>
__global__ void __launch_bounds__(kThreads, 1) tiled_gemm_kernel(const Params p) {
  using C = Config<W, kBf16Act>;
  extern __shared__ __align__(128) uint8_t smem[];
  __shared__ int a_rows[kTileM];
  __shared__ int unit_item[3];

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int warp_m = warp / 4, warp_n = warp % 4;
  const int k_tiles = static_cast<int>(p.k / C::kBK);
  const int64_t w_row_bytes = W == WeightKind::kBF16 ? 2 * p.k : (C::kFp4 ? p.k / 2 : p.k);
  const int64_t blocks_128 = p.k / 128;
  const int64_t scale_stride = W == WeightKind::kMXFP4 ? p.k / 32 : (W == WeightKind::kNVFP4 ? p.k / 16 : 0);

  int total_units;
  if constexpr (MODE == Mode::kDense) {
    total_units = static_cast<int>((p.m + kTileM - 1) / kTileM) * p.n_tiles;
  } else {
    total_units = (*p.num_items) * p.n_tiles;
  }

  for (int unit = blockIdx.x; unit < total_units; unit += gridDim.x) {
    int item, n_tile;
    if constexpr (MODE == Mode::kDense) {
      // Bands of kBand row tiles walked column tile by column tile: the CTAs resident at one
      // time share their activation rows and weight tiles through L2.
      constexpr int kBand = 8;
      const int m_tiles = static_cast<int>((p.m + kTileM - 1) / kTileM);
      const int band = unit / (kBand * p.n_tiles), within = unit % (kBand * p.n_tiles);
      const int band_rows = min(kBand, m_tiles - band * kBand);
      item = band * kBand + within % band_rows;
      n_tile = within / band_rows;
    } else {
      item = unit / p.n_tiles;
      n_tile = unit % p.n_tiles;
    }
    __syncthreads();  // the previous unit is done with shared memory
    if (threadIdx.x == 0) {
      if constexpr (MODE == Mode::kDense) {
        unit_item[0] = 0;
        unit_item[1] = item * kTileM;
        const int64_t left = p.m - static_cast<int64_t>(item) * kTileM;
        unit_item[2] = static_cast<int>(left < kTileM ? left : kTileM);
      } else {
        unit_item[0] = p.items[3 * item];
        unit_item[1] = p.items[3 * item + 1];
        unit_item[2] = p.items[3 * item + 2];
      }
    }
    __syncthreads();
    const int expert = unit_item[0], first = unit_item[1], count = unit_item[2];
    if (threadIdx.x < kTileM) {
      const int r = threadIdx.x;
      int row = -1;
      if (r < count) row = MODE == Mode::kGateUp ? p.act_row[first + r] : first + r;
      a_rows[r] = row;
    }
    __syncthreads();

    const uint8_t* wbase[2];
    const uint8_t* sbase[2];
    if constexpr (MODE == Mode::kDense) {
      wbase[0] = wbase[1] = p.w;
      sbase[0] = sbase[1] = p.w_scale;
    } else {
      wbase[0] = static_cast<const uint8_t*>(p.expert_w[0][expert]);
      sbase[0] = static_cast<const uint8_t*>(p.expert_scale[0][expert]);
      wbase[1] = MODE == Mode::kGateUp ? static_cast<const uint8_t*>(p.expert_w[1][expert]) : wbase[0];
      sbase[1] = MODE == Mode::kGateUp ? static_cast<const uint8_t*>(p.expert_scale[1][expert]) : sbase[0];
    }
    // Weight row of B-tile row j: dense/down rows n_tile*128 + j; gate/up interleaves W1 and
    // W3 per 8 rows over 64 intermediate rows.
    auto b_source = [&](int j, int* which) -> int64_t {
      if constexpr (MODE == Mode::kGateUp) {
        *which = (j / 8) % 2;
        return static_cast<int64_t>(n_tile) * 64 + (j / 16) * 8 + j % 8;
      } else {
        *which = 0;
        return static_cast<int64_t>(n_tile) * kTileN + j;
      }
    };

    auto load_stage = [&](int stage, int kt) {
      uint8_t* base = smem + stage * C::kStageBytes;
      uint8_t* a_tile = base;
      uint8_t* b_tile = base + kTileM * C::kARowBytes;
      uint8_t* a_scale = b_tile + kTileN * C::kBRowBytes;
      uint8_t* b_scale = a_scale + C::kAScaleBytes;
      const int64_t k0 = static_cast<int64_t>(kt) * C::kBK;
      constexpr int kAChunks = C::kARowBytes / 16;
      for (int i = threadIdx.x; i < kTileM * kAChunks; i += kThreads) {
        const int r = i / kAChunks, c = i % kAChunks;
        const int row = a_rows[r];
        const uint8_t* src = p.x + ((row < 0 ? 0 : row) * p.x_stride + k0) * C::kActBytes + c * 16;
        cp_async_16(smem_address(a_tile + swizzled(r, c, C::kARowBytes)), src, row < 0 ? 0u : 16u);
      }
      constexpr int kBChunks = C::kBRowBytes / 16;
      for (int i = threadIdx.x; i < kTileN * kBChunks; i += kThreads) {
        const int j = i / kBChunks, c = i % kBChunks;
        int which;
        const int64_t wrow = b_source(j, &which);
        const bool ok = wrow < p.n;
        const int64_t byte_k = W == WeightKind::kBF16 ? 2 * k0 : (C::kFp4 ? k0 / 2 : k0);
        const uint8_t* src = wbase[which] + (ok ? wrow : 0) * w_row_bytes + byte_k + c * 16;
        // FP4 tiles are read by rows of 64 bytes without swizzle (conflict-free as is).
        const int dst = C::kFp4 ? j * C::kBRowBytes + c * 16 : swizzled(j, c, C::kBRowBytes);
        cp_async_16(smem_address(b_tile + dst), src, ok ? 16u : 0u);
      }
      if constexpr (!kBf16Act) {
        for (int r = threadIdx.x; r < kTileM; r += kThreads) {
          const int row = a_rows[r];
          cp_async_4(smem_address(a_scale + 4 * r), p.x_scale + (row < 0 ? 0 : row) * blocks_128 + kt,
                     row < 0 ? 0u : 4u);
        }
      }
      if constexpr (W == WeightKind::kFP8Block) {
        // One float per 128-row block; gate/up tiles take W1's and W3's (64 rows of each).
        if (threadIdx.x < (MODE == Mode::kGateUp ? 2 : 1)) {
          const int which = threadIdx.x;
          const int64_t first_row = MODE == Mode::kGateUp ? static_cast<int64_t>(n_tile) * 64
                                                          : static_cast<int64_t>(n_tile) * kTileN;
          cp_async_4(smem_address(b_scale + 4 * which),
                     reinterpret_cast<const float*>(sbase[which]) + (first_row / 128) * blocks_128 + kt, 4u);
        }
      } else if constexpr (W == WeightKind::kMXFP4 || W == WeightKind::kNVFP4) {
        constexpr int kBytes = W == WeightKind::kMXFP4 ? 4 : 8;
        for (int j = threadIdx.x; j < kTileN; j += kThreads) {
          int which;
          const int64_t wrow = b_source(j, &which);
          const bool ok = wrow < p.n;
          const uint8_t* src = sbase[which] + (ok ? wrow : 0) * scale_stride + kt * kBytes;
          if constexpr (kBytes == 4) {
            cp_async_4(smem_address(b_scale + 4 * j), src, ok ? 4u : 0u);
          } else {
            cp_async_8(smem_address(b_scale + 8 * j), src, ok ? 8u : 0u);
          }
        }
      }
    };

    float acc[4][4][4];
#pragma unroll
    for (int a = 0; a < 4; ++a)
#pragma unroll
      for (int b = 0; b < 4; ++b)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[a][b][i] = 0.0f;

#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
      if (s < k_tiles) load_stage(s, s);
      cp_async_commit();
    }

    for (int kt = 0; kt < k_tiles; ++kt) {
      cp_async_wait<kStages - 2>();
      __syncthreads();
      if (kt + kStages - 1 < k_tiles) load_stage((kt + kStages - 1) % kStages, kt + kStages - 1);
      cp_async_commit();

      const uint8_t* base = smem + (kt % kStages) * C::kStageBytes;
      const uint8_t* a_tile = base;
      const uint8_t* b_tile = base + kTileM * C::kARowBytes;
      const float* a_scale = reinterpret_cast<const float*>(b_tile + kTileN * C::kBRowBytes);
      const uint8_t* b_scale = b_tile + kTileN * C::kBRowBytes + C::kAScaleBytes;

      float part[4][4][4];
#pragma unroll
      for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int b = 0; b < 4; ++b)
#pragma unroll
          for (int i = 0; i < 4; ++i) part[a][b][i] = 0.0f;
      float(&target)[4][4][4] = C::kPromote ? part : acc;

      if constexpr (!C::kFp4) {
        // 4 sub-steps of 32 bytes of K: ldmatrix A (per m-tile) and B (per pair of n-tiles).
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          uint32_t af[4][4], bf[4][2];
#pragma unroll
          for (int mt = 0; mt < 4; ++mt) {
            const int r = warp_m * 64 + mt * 16 + lane % 16;
            ldmatrix_x4(af[mt], smem_address(a_tile + swizzled(r, kk * 2 + lane / 16, C::kARowBytes)));
          }
#pragma unroll
          for (int np = 0; np < 2; ++np) {
            const int j = warp_n * 32 + np * 16 + lane % 8 + (lane / 16) * 8;
            uint32_t r[4];
            ldmatrix_x4(r, smem_address(b_tile + swizzled(j, kk * 2 + (lane / 8) % 2, C::kBRowBytes)));
            bf[2 * np][0] = r[0];
            bf[2 * np][1] = r[1];
            bf[2 * np + 1][0] = r[2];
            bf[2 * np + 1][1] = r[3];
          }
#pragma unroll
          for (int mt = 0; mt < 4; ++mt)
#pragma unroll
            for (int nt = 0; nt < 4; ++nt) {
              if constexpr (W == WeightKind::kFP8Block) {
                mma_e4m3_16x8x32(target[mt][nt], af[mt], bf[nt][0], bf[nt][1]);
              } else {
                mma_bf16_16x8x16(target[mt][nt], af[mt], bf[nt][0], bf[nt][1]);
              }
            }
        }
      } else {
        // FP4: thread t of column j holds 16-byte chunk t of the row (a 32-block), word p of
        // it feeds k-group p; activations are gathered to match (weight_decode.cuh).
        uint4 bw[4];
        uint32_t bmul[4][2];  // [n-tile][16-block half of the lane's chunk]
        float col_mul[4][2];
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) {
          const int j = warp_n * 32 + nt * 8 + g;
          bw[nt] = *reinterpret_cast<const uint4*>(b_tile + j * C::kBRowBytes + t * 16);
          if constexpr (W == WeightKind::kMXFP4) {
            const uint32_t s = *reinterpret_cast<const uint32_t*>(b_scale + 4 * j);
            const int e = static_cast<int>((s >> (8 * t)) & 0xFFu);
            const int ref = max(max(s & 0xFF, (s >> 8) & 0xFF), max((s >> 16) & 0xFF, s >> 24));
            const uint32_t m = splat_f16(mxfp4_f16_multiplier(ref - e));
            bmul[nt][0] = bmul[nt][1] = m;
#pragma unroll
            for (int c = 0; c < 2; ++c) {
              const uint32_t sc = *reinterpret_cast<const uint32_t*>(b_scale + 4 * (warp_n * 32 + nt * 8 + 2 * t + c));
              const uint32_t rc = max(max(sc & 0xFF, (sc >> 8) & 0xFF), max((sc >> 16) & 0xFF, sc >> 24));
              col_mul[nt][c] = e8m0_to_float(rc);
            }
          } else {
            const uint32_t two = *reinterpret_cast<const uint16_t*>(b_scale + 8 * j + 2 * t);
            const uint32_t m = nvfp4_f16_multipliers(two);
            bmul[nt][0] = (m & 0xFFFFu) | (m << 16);
            bmul[nt][1] = (m >> 16) | (m & 0xFFFF0000u);
            col_mul[nt][0] = col_mul[nt][1] = 1.0f;
          }
        }
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          uint32_t bq[4][4];
#pragma unroll
          for (int nt = 0; nt < 4; ++nt) {
            const uint32_t word = q == 0 ? bw[nt].x : (q == 1 ? bw[nt].y : (q == 2 ? bw[nt].z : bw[nt].w));
            e2m1x8_to_f16x2(word, bq[nt]);
#pragma unroll
            for (int i = 0; i < 4; ++i) {
              bq[nt][i] = mul_f16x2(bq[nt][i], bmul[nt][q >> 1]);
              if constexpr (kBf16Act) bq[nt][i] = f16x2_to_bf16x2(bq[nt][i]);
            }
          }
#pragma unroll
          for (int mt = 0; mt < 4; ++mt) {
            uint32_t lo[4], hi[4];
            const int r = warp_m * 64 + mt * 16 + g;
            if constexpr (kBf16Act) {
              // bf16 rows of 256 bytes: elements 32t + 8q .. +8 are chunk 4t + q
              const uint4 vl = *reinterpret_cast<const uint4*>(a_tile + swizzled(r, 4 * t + q, C::kARowBytes));
              const uint4 vh = *reinterpret_cast<const uint4*>(a_tile + swizzled(r + 8, 4 * t + q, C::kARowBytes));
              const uint32_t wl[4] = {vl.x, vl.y, vl.z, vl.w}, wh[4] = {vh.x, vh.y, vh.z, vh.w};
              b16x8_paired(wl, lo);
              b16x8_paired(wh, hi);
            } else {
              // e4m3 rows of 128 bytes: elements 32t + 8q .. +8 are half (q % 2) of chunk 2t + q/2
              const int chunk = 2 * t + q / 2, half = (q % 2) * 8;
              const uint2 vl = *reinterpret_cast<const uint2*>(a_tile + swizzled(r, chunk, C::kARowBytes) + half);
              const uint2 vh = *reinterpret_cast<const uint2*>(a_tile + swizzled(r + 8, chunk, C::kARowBytes) + half);
              e4m3x8_to_f16x2_paired(vl.x, vl.y, lo);
              e4m3x8_to_f16x2_paired(vh.x, vh.y, hi);
            }
            const uint32_t a0[4] = {lo[0], hi[0], lo[1], hi[1]};
            const uint32_t a1[4] = {lo[2], hi[2], lo[3], hi[3]};
#pragma unroll
            for (int nt = 0; nt < 4; ++nt) {
              if constexpr (kBf16Act) {
                mma_bf16_16x8x16(target[mt][nt], a0, bq[nt][0], bq[nt][1]);
                mma_bf16_16x8x16(target[mt][nt], a1, bq[nt][2], bq[nt][3]);
              } else {
                mma_f16_16x8x16(target[mt][nt], a0, bq[nt][0], bq[nt][1]);
                mma_f16_16x8x16(target[mt][nt], a1, bq[nt][2], bq[nt][3]);
              }
            }
          }
        }
        if constexpr (C::kPromote) {
#pragma unroll
          for (int mt = 0; mt < 4; ++mt) {
            const int r = warp_m * 64 + mt * 16 + g;
            const float s_lo = a_scale[r], s_hi = a_scale[r + 8];
#pragma unroll
            for (int nt = 0; nt < 4; ++nt) {
              acc[mt][nt][0] += part[mt][nt][0] * (s_lo * col_mul[nt][0]);
              acc[mt][nt][1] += part[mt][nt][1] * (s_lo * col_mul[nt][1]);
              acc[mt][nt][2] += part[mt][nt][2] * (s_hi * col_mul[nt][0]);
              acc[mt][nt][3] += part[mt][nt][3] * (s_hi * col_mul[nt][1]);
            }
          }
        }
      }
      if constexpr (W == WeightKind::kFP8Block) {
        const float* wscale = reinterpret_cast<const float*>(b_scale);
#pragma unroll
        for (int mt = 0; mt < 4; ++mt) {
          const int r = warp_m * 64 + mt * 16 + g;
          const float s_lo = a_scale[r], s_hi = a_scale[r + 8];
#pragma unroll
          for (int nt = 0; nt < 4; ++nt) {
            const float ws = wscale[MODE == Mode::kGateUp ? (nt & 1) : 0];
            acc[mt][nt][0] += part[mt][nt][0] * (s_lo * ws);
            acc[mt][nt][1] += part[mt][nt][1] * (s_lo * ws);
            acc[mt][nt][2] += part[mt][nt][2] * (s_hi * ws);
            acc[mt][nt][3] += part[mt][nt][3] * (s_hi * ws);
          }
        }
      }
    }
    cp_async_wait<0>();

    // Epilogue: c[i] is (row g + 8*(i/2), column 2t + i%2) of each 16 x 8 tile.
    const float nv_factor = W == WeightKind::kNVFP4 ? 128.0f : 1.0f;
    if constexpr (MODE == Mode::kGateUp) {
      const float gs_gate = (p.expert_gs[0] ? p.expert_gs[0][expert] : 1.0f) * nv_factor;
      const float gs_up = (p.expert_gs[1] ? p.expert_gs[1][expert] : 1.0f) * nv_factor;
      const float limit = p.swiglu_limit;
#pragma unroll
      for (int mt = 0; mt < 4; ++mt)
#pragma unroll
        for (int np = 0; np < 2; ++np)
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const int r = warp_m * 64 + mt * 16 + g + 8 * (i >> 1);
            if (r >= count) continue;
            const int64_t col = static_cast<int64_t>(n_tile) * 64 + warp_n * 16 + np * 8 + 2 * t + (i & 1);
            if (col >= p.n) continue;
            const float h = swiglu_hidden(acc[mt][2 * np][i], acc[mt][2 * np + 1][i], gs_gate, gs_up, limit,
                                          p.route_weight[first + r]);
            p.out[static_cast<int64_t>(first + r) * p.out_stride + col] = __float2bfloat16_rn(h);
          }
    } else {
      float scale = p.out_scale;
      if constexpr (MODE == Mode::kDown) scale = (p.expert_gs[0] ? p.expert_gs[0][expert] : 1.0f) * nv_factor;
#pragma unroll
      for (int mt = 0; mt < 4; ++mt)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int r = warp_m * 64 + mt * 16 + g + 8 * half;
          if (r >= count) continue;
#pragma unroll
          for (int nt = 0; nt < 4; ++nt) {
            const int64_t col = static_cast<int64_t>(n_tile) * kTileN + warp_n * 32 + nt * 8 + 2 * t;
            if (col >= p.n) continue;
            const __nv_bfloat162 v =
                __floats2bfloat162_rn(acc[mt][nt][2 * half] * scale, acc[mt][nt][2 * half + 1] * scale);
            *reinterpret_cast<__nv_bfloat162*>(p.out + static_cast<int64_t>(first + r) * p.out_stride + col) = v;
          }
        }
    }
  }
}

}  // namespace fp4serve::cuda::tiled
