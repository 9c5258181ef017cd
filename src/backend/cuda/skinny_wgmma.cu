// Decode on FP8 wgmma (the kernels are in skinny_wgmma.cuh): which shapes take it, how a
// launch is split along K, and the product's instantiations (kBurst8-block bursts, no prefetch).
#include <algorithm>
#include <cstdint>

#include "backend/cuda/kernel_launchers.h"
#include "backend/cuda/skinny_wgmma.cuh"

namespace fp4serve::cuda {
namespace {

using wgmma_decode::kCtasPerSm;
using wgmma_decode::kKcCap;
using wgmma_decode::kPartialFloats;
using wgmma_decode::kRowsPerCta;
using wgmma_decode::Params;

// Split count by the same wave model as skinny_launch.cu: time ~ waves x (K range + 512).
void choose_split(int64_t k, int64_t row_blocks, int num_sms, int64_t m, SkinnyPlan& plan) {
  const int64_t blocks = k / 128;
  const int64_t min_splits = (k + kKcCap - 1) / kKcCap;
  const int64_t min_blocks = m <= 8 ? 1 : wgmma_decode::burst<16, wgmma_decode::kBurst8>();
  const int64_t max_splits = std::max<int64_t>(min_splits, blocks / min_blocks);
  const int64_t slots = static_cast<int64_t>(kCtasPerSm) * num_sms;
  int64_t splits = min_splits;
  int64_t best = -1;
  for (int64_t s = min_splits; s <= max_splits; ++s) {
    const int64_t waves = (row_blocks * s + slots - 1) / slots;
    const int64_t cost = waves * ((blocks + s - 1) / s * 128 + 512);
    if (best < 0 || cost < best) {
      best = cost;
      splits = s;
    }
  }
  plan.splits = static_cast<int>(splits);
  plan.kc_max = static_cast<int>((blocks + splits - 1) / splits * 128);
}

}  // namespace

bool wgmma_decode_supported(const DenseGemmArgs& a) {
  const bool fp8 = a.weight == WeightKind::kFP8Block && a.x_stride % 4 == 0;
  // MXFP4 at 16 tokens would hold 64 partial floats per lane and spill (ptxas: 132 bytes).
  const bool mxfp4 = a.weight == WeightKind::kMXFP4 && a.x_stride % 8 == 0 && a.m <= 8;
  // NVFP4: two 16-block columns per token in N = 8.
  const bool nvfp4 = a.weight == WeightKind::kNVFP4 && a.x_stride % 8 == 0 && a.m <= 4;
  return (fp8 || mxfp4 || nvfp4) && a.act == ActKind::kFP8 && a.m >= 1 && a.m <= 16 && a.k % 128 == 0;
}

// Measured on an H100 against v11, both binaries interleaved on one machine
// (docs/kernels/runs/s3/run2-h100-ab-v11-wgmma-prefetch.md): the wgmma kernel took 0.54-0.93x
// v11's time on every FP8 matrix of up to 44 MB and tied or lost (0.96-1.07x) on Pro wq_b (100 MB)
// and wo_b (117 MB), where v11's 256-row CTAs already stream at ~70% of copy.
bool wgmma_decode_chosen(const DenseGemmArgs& a) {
  constexpr int64_t kLargestWeightBytes = int64_t{64} << 20;
  const int64_t bytes = a.weight == WeightKind::kFP8Block ? a.n * a.k : a.n * a.k / 2;
  return wgmma_decode_supported(a) && bytes < kLargestWeightBytes;
}

SkinnyPlan plan_wgmma_decode(int64_t n, int64_t k, int64_t m, int num_sms) {
  SkinnyPlan plan;
  plan.token_tiles = m <= 8 ? 1 : 2;
  plan.row_blocks = static_cast<int>((n + kRowsPerCta - 1) / kRowsPerCta);
  choose_split(k, plan.row_blocks, num_sms, m, plan);
  plan.grid = plan.row_blocks * plan.splits;
  plan.smem_bytes =
      plan.token_tiles == 1 ? wgmma_decode::smem_bytes<8>(plan.kc_max) : wgmma_decode::smem_bytes<16>(plan.kc_max);
  plan.counters = plan.row_blocks;
  plan.partial_floats = plan.splits > 1 ? static_cast<int64_t>(plan.grid) * kPartialFloats : 0;
  return plan;
}

cudaError_t launch_wgmma_decode(const DenseGemmArgs& a, const SkinnyPlan& plan, const Scratch& scratch,
                                cudaStream_t stream) {
  void (*fn)(const Params) = nullptr;
  if (a.weight == WeightKind::kMXFP4) {
    fn = wgmma_decode::wgmma_decode_fp4_kernel<WeightKind::kMXFP4, 8>;
  } else if (a.weight == WeightKind::kNVFP4) {
    fn = wgmma_decode::wgmma_decode_fp4_kernel<WeightKind::kNVFP4, 8>;
  } else {
    fn = plan.token_tiles == 1 ? wgmma_decode::wgmma_decode_fp8_kernel<8> : wgmma_decode::wgmma_decode_fp8_kernel<16>;
  }
  return wgmma_decode::launch_kernel(fn, wgmma_decode::make_params(a, plan, scratch), plan, stream);
}

}  // namespace fp4serve::cuda
