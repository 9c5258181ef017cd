// Variant 03: the mma.sync decode kernel (skinny_gemm.cuh) with 4-step bursts and one CTA per
// SM, for FP8 block-128 weights: v8 of docs/kernels/skinny.md, measured against v7's 2-step
// bursts at two CTAs per SM (the product's choice) in the same run.
#include "backend/cuda/skinny_gemm.cuh"
#include "decode_variants.h"

namespace fp4serve::bench {
namespace {

namespace sk = cuda::skinny;

constexpr int kBurst = 4;
constexpr int kCtasPerSm = 1;

bool takes(const cuda::DenseGemmArgs& a) {
  return a.weight == cuda::WeightKind::kFP8Block && a.act == cuda::ActKind::kFP8 && a.m >= 1 && a.m <= 16;
}

// The product's split of K; it assumes 2-step bursts at two CTAs per SM, which only moves
// where splits fall.
cuda::SkinnyPlan plan(const cuda::DenseGemmArgs& a, int num_sms) {
  return cuda::plan_skinny_dense(a.weight, a.n, a.k, a.m, num_sms);
}

cudaError_t launch(const cuda::DenseGemmArgs& a, const cuda::SkinnyPlan& plan, const cuda::Scratch& scratch,
                   cudaStream_t stream) {
  constexpr cuda::WeightKind kFp8 = cuda::WeightKind::kFP8Block;
  void (*fn)(const sk::Params) =
      plan.token_tiles == 1 ? sk::skinny_gemm_kernel<kFp8, false, 1, sk::Mode::kDense, kBurst, kCtasPerSm>
                            : sk::skinny_gemm_kernel<kFp8, false, 2, sk::Mode::kDense, kBurst, kCtasPerSm>;
  return sk::launch_kernel(fn, sk::dense_params(a, plan, scratch), plan, stream);
}

}  // namespace

const DecodeVariant kSkinnyBurst4OneCtaPerSm{"dev03-mma.sync-burst4-1cta", false, takes, plan, launch};

}  // namespace fp4serve::bench
