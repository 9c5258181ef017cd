// Variant 01: decode on the mma.sync kernel (skinny_gemm.cuh, v11 in docs/kernels/skinny.md)
// for the shapes the product runs on wgmma (skinny_wgmma.cu: FP8 block-128, MXFP4 and NVFP4
// weights under 64 MB). The product still runs this kernel for every other decode shape, so
// parity keeps it checked on these too.
#include "decode_variants.h"

namespace fp4serve::bench {
namespace {

bool takes(const cuda::DenseGemmArgs& a) { return cuda::wgmma_decode_chosen(a); }

cuda::SkinnyPlan plan(const cuda::DenseGemmArgs& a, int num_sms) {
  return cuda::plan_skinny_dense(a.weight, a.n, a.k, a.m, num_sms);
}

}  // namespace

const DecodeVariant kDecodeOnMmaSync{"decode-mma.sync", false, takes, plan, cuda::launch_skinny_dense};

}  // namespace fp4serve::bench
