// Variant 02: the FP8 wgmma decode kernel (skinny_wgmma.cuh) with 2-block bursts, the next
// burst loaded while this burst's wgmmas run: twice the weight registers in flight. Measured
// against the product's 3-block bursts without prefetch in docs/kernels/skinny.md (v15), where
// it was not faster.
#include "backend/cuda/skinny_wgmma.cuh"
#include "decode_variants.h"

namespace fp4serve::bench {
namespace {

namespace wd = cuda::wgmma_decode;

constexpr int kBurstOf8Tokens = 2;

bool takes(const cuda::DenseGemmArgs& a) {
  return a.weight == cuda::WeightKind::kFP8Block && cuda::wgmma_decode_supported(a);
}

// The product's split of K; it assumes 3-block bursts, which only moves where splits fall.
cuda::SkinnyPlan plan(const cuda::DenseGemmArgs& a, int num_sms) {
  return cuda::plan_wgmma_decode(a.n, a.k, a.m, num_sms);
}

cudaError_t launch(const cuda::DenseGemmArgs& a, const cuda::SkinnyPlan& plan, const cuda::Scratch& scratch,
                   cudaStream_t stream) {
  void (*fn)(const wd::Params) = plan.token_tiles == 1 ? wd::wgmma_decode_fp8_kernel<8, kBurstOf8Tokens, true>
                                                       : wd::wgmma_decode_fp8_kernel<16, kBurstOf8Tokens, true>;
  return wd::launch_kernel(fn, wd::make_params(a, plan, scratch), plan, stream);
}

}  // namespace

const DecodeVariant kWgmmaDecodePrefetch{"dev02-wgmma-burst2-prefetch", true, takes, plan, launch};

}  // namespace fp4serve::bench
