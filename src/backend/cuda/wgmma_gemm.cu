// Prefill GEMMs on the Hopper-only instructions (docs/kernels/tiled.md, "wgmma"):
// y[M, N] = x[M, K] W[N, K]^T with
//  - E4M3 operands, x scaled per (row, 128-k block) and W per (128-row block, 128-k block), as
//    DeepSeek's reference computes FP8 block-128 layers;
//  - BF16 operands: BF16 weights, and 4-bit weights whose exact BF16 copies prefill_widen.cu
//    made (E2M1 x block scale has at most 6 significant bits; E4M3 x a power-of-two activation
//    scale at most 4), so the products stay exact and the sums fp32.
//
// A CTA (one per SM, persistent) owns 128 x 256 (or 128 x 128) output tiles in turn and walks
// K in blocks of 128 bytes (128 E4M3 = one scale block, or 64 BF16). Warpgroup 0
// is the producer: one thread issues two TMA copies per block (the x tile, 16 KB, and the W tile,
// 32 or 16 KB, with the 128-byte swizzle the MMAs read) into a ring of 4 or 5 slots guarded by
// mbarriers ("full" counts the bytes in, "empty" the consumers' releases). Warpgroups 1 and 2
// each own 64 rows, per 128 columns: FP8, four m64n128k32 wgmmas per 128-k block into a scratch
// accumulator, then the block's scales are applied in fp32 while promoting into the running sum
// (DeepGEMM's scheme), so the per-block scales never touch the operands; BF16, four m64n128k16
// wgmmas straight into the sum.
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cudaTypedefs.h>

#include <algorithm>

#include "backend/cuda/kernel_launchers.h"
#include "backend/cuda/wgmma_primitives.cuh"

namespace fp4serve::cuda {
namespace {

constexpr int kTile = 128;  // rows of x per tile, and bytes of k per block
constexpr int kThreads = 384;
constexpr int kOperandBytes = kTile * kTile;  // the x tile: 128 rows of 128 bytes

// Rows of W per tile: 256 loads each x tile once per 256 outputs (half the L2 -> shared traffic
// of 128 rows; 5-20% faster at M = 4096 on an H200, docs/kernels/tiled.md) but gives half the
// tiles, so shapes with few tiles take 128 (launch_wgmma_dense chooses).
template <int kTileN>
struct TileShape {
  static_assert(kTileN == 128 || kTileN == 256, "tiles of 128 or 256 rows of W");
  static constexpr int kHalves = kTileN / 128;  // m64n128 wgmma chains per consumer warpgroup
  static constexpr int kStages = kTileN == 256 ? 4 : 5;
  static constexpr int kStageBytes = kOperandBytes + kTileN * kTile;
  static constexpr int kSmemBytes = kStages * kStageBytes + 2 * kStages * 8 + 1024;  // + barriers, alignment
};
constexpr int kGroupRows = 8;  // m tiles per raster group (neighbouring CTAs share W tiles in L2)

struct WgmmaParams {
  const float* x_scale;  // FP8: [m, blocks_k]
  const float* w_scale;  // FP8: [n / 128, blocks_k]
  int blocks_k;          // 128-byte blocks of K
  int m, n;
  int m_tiles, n_tiles;
  __nv_bfloat16* y;
  int64_t y_stride;
  float out_scale;
};

// Output tile `tile` of the grouped rasterization: kGroupRows m tiles run along each n tile
// before moving on, so that CTAs running together share W tiles in L2.
template <int kTileN>
__device__ __forceinline__ void tile_origin(const WgmmaParams& p, int tile, int& m0, int& n0) {
  const int tiles_per_group = kGroupRows * p.n_tiles;
  const int first_m = (tile / tiles_per_group) * kGroupRows;
  const int group_size = min(p.m_tiles - first_m, kGroupRows);
  const int in_group = tile % tiles_per_group;
  m0 = (first_m + in_group % group_size) * kTile;
  n0 = (in_group / group_size) * kTileN;
}

// FP8 block-128 K loop of one tile: the four k32 wgmmas of each 128-k block go into a scratch
// accumulator, which is promoted into the fp32 sum with the block's scales (DeepGEMM's 128 k;
// the tensor cores' FP8 accumulation keeps about 14 bits, so the scratch sums stay short). With
// 256-row tiles the two 128-column halves take turns in the one scratch accumulator. (Promotion
// every 64 k with two scratch accumulators measured 2-9% slower: docs/kernels/tiled.md.)
template <int kTileN>
__device__ __forceinline__ void fp8_block_k_loop(const WgmmaParams& p, int n0, int row_lo, int row_hi,
                                                 int consumer, uint32_t stage_base, uint32_t full_bar,
                                                 uint32_t empty_bar, int& it,
                                                 float (&acc)[TileShape<kTileN>::kHalves][64]) {
  using S = TileShape<kTileN>;
  const float* xs_lo = p.x_scale + static_cast<int64_t>(min(row_lo, p.m - 1)) * p.blocks_k;
  const float* xs_hi = p.x_scale + static_cast<int64_t>(min(row_hi, p.m - 1)) * p.blocks_k;
  const float* ws = p.w_scale + static_cast<int64_t>(n0 / 128) * p.blocks_k;
  float part[64];

  for (int kb = 0; kb < p.blocks_k; ++kb, ++it) {
    const int s = it % S::kStages;
    // Scales first: their loads overlap the wait for the tiles.
    float w_s[S::kHalves];
#pragma unroll
    for (int h = 0; h < S::kHalves; ++h) w_s[h] = __ldg(ws + h * p.blocks_k + kb);
    const float x_lo = __ldg(xs_lo + kb), x_hi = __ldg(xs_hi + kb);
    mbarrier_wait(full_bar + 8 * s, (it / S::kStages) & 1);
    const uint32_t a = stage_base + s * S::kStageBytes + consumer * 64 * kTile;
    const uint32_t b0 = stage_base + s * S::kStageBytes + kOperandBytes;
#pragma unroll
    for (int h = 0; h < S::kHalves; ++h) {
      const uint32_t b = b0 + h * 128 * kTile;
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        wgmma_m64n128k32_e4m3(part, swizzled_tile_descriptor(a + 32 * kk), swizzled_tile_descriptor(b + 32 * kk), kk);
      }
      wgmma_commit();
      wgmma_wait<0>();
#pragma unroll
      for (int i = 0; i < 64; ++i) pin_register(part[i]);
      if (h == S::kHalves - 1) mbarrier_arrive(empty_bar + 8 * s);
      const float s_lo = x_lo * w_s[h], s_hi = x_hi * w_s[h];
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        acc[h][4 * j + 0] = fmaf(part[4 * j + 0], s_lo, acc[h][4 * j + 0]);
        acc[h][4 * j + 1] = fmaf(part[4 * j + 1], s_lo, acc[h][4 * j + 1]);
        acc[h][4 * j + 2] = fmaf(part[4 * j + 2], s_hi, acc[h][4 * j + 2]);
        acc[h][4 * j + 3] = fmaf(part[4 * j + 3], s_hi, acc[h][4 * j + 3]);
      }
    }
  }
}

// Persistent: each CTA walks tiles blockIdx.x, + gridDim.x, ...; the producer runs ahead into
// the next tile while the consumers store the last one.
template <bool kFp8, int kTileN>
__global__ void __launch_bounds__(kThreads, 1)
    wgmma_gemm_kernel(const __grid_constant__ CUtensorMap x_map, const __grid_constant__ CUtensorMap w_map,
                           const WgmmaParams p) {
  using S = TileShape<kTileN>;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  const uint32_t stage_base = shared_u32(smem);
  const uint32_t full_bar = stage_base + S::kStages * S::kStageBytes;
  const uint32_t empty_bar = full_bar + S::kStages * 8;
  const int tiles = p.m_tiles * p.n_tiles;

  if (threadIdx.x == 0) {
    for (int s = 0; s < S::kStages; ++s) {
      mbarrier_init(full_bar + 8 * s, 1);
      mbarrier_init(empty_bar + 8 * s, 2 * 128);
    }
    mbarrier_init_fence();
  }
  __syncthreads();

  const int warpgroup = threadIdx.x / 128;
  if (warpgroup == 0) {
    // The producer needs few registers; the consumers take them (40 + 2 x 232 per thread
    // x 128 threads fits the 64K register file).
    warpgroup_release_registers<40>();
    if (threadIdx.x == 0) {
      int it = 0;  // k blocks issued by this CTA so far: ring slot and phase
      for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
        int m0, n0;
        tile_origin<kTileN>(p, tile, m0, n0);
        for (int kb = 0; kb < p.blocks_k; ++kb, ++it) {
          const int s = it % S::kStages;
          if (it >= S::kStages) mbarrier_wait(empty_bar + 8 * s, ((it / S::kStages) - 1) & 1);
          const uint32_t a = stage_base + s * S::kStageBytes;
          mbarrier_arrive_expect_tx(full_bar + 8 * s, S::kStageBytes);
          tma_load_2d(a, &x_map, full_bar + 8 * s, kb * kTile, m0);
          tma_load_2d(a + kOperandBytes, &w_map, full_bar + 8 * s, kb * kTile, n0);
        }
      }
    }
    return;
  }

  warpgroup_claim_registers<232>();
  const int consumer = warpgroup - 1;  // rows 64 * consumer .. + 63 of the tile
  const int warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  int it = 0;
  for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    int m0, n0;
    tile_origin<kTileN>(p, tile, m0, n0);
    const int row_lo = m0 + 64 * consumer + 16 * warp + g, row_hi = row_lo + 8;
    float acc[S::kHalves][64];
#pragma unroll
    for (int h = 0; h < S::kHalves; ++h)
#pragma unroll
      for (int i = 0; i < 64; ++i) acc[h][i] = 0.0f;
    if constexpr (kFp8) {
      fp8_block_k_loop<kTileN>(p, n0, row_lo, row_hi, consumer, stage_base, full_bar, empty_bar, it, acc);
    } else {
      for (int kb = 0; kb < p.blocks_k; ++kb, ++it) {
        const int s = it % S::kStages;
        mbarrier_wait(full_bar + 8 * s, (it / S::kStages) & 1);
        const uint32_t a = stage_base + s * S::kStageBytes + consumer * 64 * kTile;
        const uint32_t b = stage_base + s * S::kStageBytes + kOperandBytes;
        wgmma_fence();
#pragma unroll
        for (int h = 0; h < S::kHalves; ++h)
#pragma unroll
          for (int kk = 0; kk < kTile / 32; ++kk) {
            wgmma_m64n128k16_bf16(acc[h], swizzled_tile_descriptor(a + 32 * kk),
                                  swizzled_tile_descriptor(b + h * 128 * kTile + 32 * kk));
          }
        wgmma_commit();
        wgmma_wait<0>();
#pragma unroll
        for (int h = 0; h < S::kHalves; ++h)
#pragma unroll
          for (int i = 0; i < 64; ++i) pin_register(acc[h][i]);
        mbarrier_arrive(empty_bar + 8 * s);
      }
    }

#pragma unroll
    for (int h = 0; h < S::kHalves; ++h)
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        const int col = n0 + 128 * h + 8 * j + 2 * t;
        if (row_lo < p.m) {
          *reinterpret_cast<__nv_bfloat162*>(p.y + row_lo * p.y_stride + col) =
              __floats2bfloat162_rn(acc[h][4 * j] * p.out_scale, acc[h][4 * j + 1] * p.out_scale);
        }
        if (row_hi < p.m) {
          *reinterpret_cast<__nv_bfloat162*>(p.y + row_hi * p.y_stride + col) =
              __floats2bfloat162_rn(acc[h][4 * j + 2] * p.out_scale, acc[h][4 * j + 3] * p.out_scale);
        }
      }
  }
}

// cuTensorMapEncodeTiled through the runtime (no link against the driver library).
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
      f = nullptr;
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

// A [rows, cols] byte matrix with `stride` bytes between rows, read in tiles of `box_rows` rows
// of 128 bytes with the 128-byte swizzle.
bool encode_tile_map(CUtensorMap& map, const void* base, int64_t rows, int64_t cols, int64_t stride, int box_rows) {
  const PFN_cuTensorMapEncodeTiled_v12000 encode = tensor_map_encoder();
  if (encode == nullptr) return false;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(stride)};
  const cuuint32_t box[2] = {kTile, static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  return encode(&map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<void*>(base), dims, strides, box,
                element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

}  // namespace

bool wgmma_dense_supported(const DenseGemmArgs& a) {
  const auto aligned16 = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  const bool fp8 = a.weight == WeightKind::kFP8Block && a.act == ActKind::kFP8;
  const bool bf16 = a.weight == WeightKind::kBF16 && a.act == ActKind::kBF16;
  const int64_t elem = bf16 ? 2 : 1;
  return (fp8 || bf16) && a.n % 128 == 0 && (a.k * elem) % kTile == 0 && (a.x_stride * elem) % 16 == 0 &&
         a.y_stride % 2 == 0 && aligned16(a.x) && aligned16(a.w) && a.m < (int64_t{1} << 31) &&
         a.n < (int64_t{1} << 31) && tensor_map_encoder() != nullptr;
}

namespace {

template <int kTileN>
cudaError_t launch_with_tiles(const DenseGemmArgs& a, int sms, cudaStream_t stream) {
  using S = TileShape<kTileN>;
  const bool fp8 = a.weight == WeightKind::kFP8Block;
  const int64_t elem = fp8 ? 1 : 2;
  CUtensorMap x_map{}, w_map{};
  if (!encode_tile_map(x_map, a.x, a.m, a.k * elem, a.x_stride * elem, kTile) ||
      !encode_tile_map(w_map, a.w, a.n, a.k * elem, a.k * elem, kTileN)) {
    return cudaErrorInvalidValue;
  }
  WgmmaParams p{};
  p.x_scale = a.x_scale;
  p.w_scale = static_cast<const float*>(a.w_scale);
  p.blocks_k = static_cast<int>(a.k * elem / kTile);
  p.m = static_cast<int>(a.m);
  p.n = static_cast<int>(a.n);
  p.m_tiles = static_cast<int>((a.m + kTile - 1) / kTile);
  p.n_tiles = static_cast<int>(a.n / kTileN);
  p.y = static_cast<__nv_bfloat16*>(a.y);
  p.y_stride = a.y_stride;
  p.out_scale = a.global_scale;
  const auto kernel = fp8 ? wgmma_gemm_kernel<true, kTileN> : wgmma_gemm_kernel<false, kTileN>;
  const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, S::kSmemBytes);
  if (e != cudaSuccess) return e;
  const int64_t grid = std::min<int64_t>(static_cast<int64_t>(p.m_tiles) * p.n_tiles, sms);
  kernel<<<static_cast<unsigned>(grid), kThreads, S::kSmemBytes, stream>>>(x_map, w_map, p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_wgmma_dense(const DenseGemmArgs& a, cudaStream_t stream) {
  if (a.m == 0) return cudaSuccess;
  int device = 0, sms = 0;
  cudaError_t q = cudaGetDevice(&device);
  if (q == cudaSuccess) q = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (q != cudaSuccess) return q;
  // 256-row W tiles where they still give every SM two tiles or more (docs/kernels/tiled.md:
  // faster there, up to 1.9x slower on shapes with fewer tiles).
  const int64_t wide_tiles = (a.m + kTile - 1) / kTile * (a.n / 256);
  if (a.n % 256 == 0 && wide_tiles >= 2 * static_cast<int64_t>(sms)) return launch_with_tiles<256>(a, sms, stream);
  return launch_with_tiles<128>(a, sms, stream);
}

}  // namespace fp4serve::cuda
