// Instantiates the prefill kernels (tiled_gemm.cuh): dense {BF16, FP8, MXFP4, NVFP4, NVFP4
// with BF16 activations} and MoE gate/up and down {FP8, MXFP4, NVFP4}: 11 kernels.
#include <cuda_runtime.h>

#include <algorithm>

#include "backend/cuda/kernel_launchers.h"
#include "backend/cuda/tiled_gemm.cuh"

namespace fp4serve::cuda {
namespace {

using tiled::Mode;
using KernelFn = void (*)(const tiled::Params);

struct Kernel {
  KernelFn fn = nullptr;
  int smem = 0;
};

template <WeightKind W, bool kBf16Act, Mode M>
Kernel make() {
  return Kernel{tiled::tiled_gemm_kernel<W, kBf16Act, M>, tiled::Config<W, kBf16Act>::kSmemBytes};
}

Kernel dense_kernel(WeightKind w, ActKind act) {
  switch (w) {
    case WeightKind::kBF16: return make<WeightKind::kBF16, true, Mode::kDense>();
    case WeightKind::kFP8Block: return make<WeightKind::kFP8Block, false, Mode::kDense>();
    case WeightKind::kMXFP4: return make<WeightKind::kMXFP4, false, Mode::kDense>();
    case WeightKind::kNVFP4:
      return act == ActKind::kBF16 ? make<WeightKind::kNVFP4, true, Mode::kDense>()
                                   : make<WeightKind::kNVFP4, false, Mode::kDense>();
  }
  return {};
}

template <Mode M>
Kernel moe_kernel(WeightKind w) {
  switch (w) {
    case WeightKind::kFP8Block: return make<WeightKind::kFP8Block, false, M>();
    case WeightKind::kMXFP4: return make<WeightKind::kMXFP4, false, M>();
    case WeightKind::kNVFP4: return make<WeightKind::kNVFP4, false, M>();
    case WeightKind::kBF16: return {};
  }
  return {};
}

cudaError_t launch(const Kernel& k, const tiled::Params& p, int64_t grid, cudaStream_t stream) {
  if (k.fn == nullptr) return cudaErrorInvalidValue;
  if (grid == 0) return cudaSuccess;
  const cudaError_t e = cudaFuncSetAttribute(k.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, k.smem);
  if (e != cudaSuccess) return e;
  k.fn<<<static_cast<unsigned>(std::min<int64_t>(grid, 1 << 30)), tiled::kThreads, k.smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_tiled_dense(const DenseGemmArgs& a, cudaStream_t stream) {
  if (wgmma_dense_supported(a)) return launch_wgmma_dense(a, stream);
  tiled::Params p{};
  p.w = static_cast<const uint8_t*>(a.w);
  p.w_scale = static_cast<const uint8_t*>(a.w_scale);
  p.out_scale = a.global_scale * (a.weight == WeightKind::kNVFP4 ? 128.0f : 1.0f);
  p.m = a.m;
  p.n = a.n;
  p.k = a.k;
  p.x = static_cast<const uint8_t*>(a.x);
  p.x_scale = a.x_scale;
  p.x_stride = a.x_stride;
  p.n_tiles = static_cast<int>((a.n + tiled::kTileN - 1) / tiled::kTileN);
  p.out = static_cast<__nv_bfloat16*>(a.y);
  p.out_stride = a.y_stride;
  const int64_t grid = (a.m + tiled::kTileM - 1) / tiled::kTileM * p.n_tiles;
  return launch(dense_kernel(a.weight, a.act), p, grid, stream);
}

cudaError_t launch_tiled_moe(const MoeGemmArgs& a, bool gate_up, int num_sms, cudaStream_t stream) {
  tiled::Params p{};
  copy_moe_args(a, p);
  p.n_tiles = static_cast<int>(gate_up ? a.n / 64 : (a.n + tiled::kTileN - 1) / tiled::kTileN);
  const int64_t grid = std::min<int64_t>(static_cast<int64_t>(a.max_items) * p.n_tiles, num_sms);
  return launch(gate_up ? moe_kernel<Mode::kGateUp>(a.weight) : moe_kernel<Mode::kDown>(a.weight), p, grid, stream);
}

}  // namespace fp4serve::cuda
