// Decode GEMM variants kept beside the product's kernels, in the manner of llm.c's dev/cuda:
// alternatives that docs/kernels/skinny.md measured, or that parity must keep checking, but
// that the product does not select. Each numbered file of this folder defines one, built from
// the kernel headers of src/backend/cuda (*.cuh) with its own template arguments, so that no
// switch in src/ selects them. cuda_parity runs every variant on the shapes it takes against
// the same float64 reference as the product's kernels; kernel_workbench --variants times them
// beside the product's kernel.
#pragma once

#include <cuda_runtime_api.h>

#include <vector>

#include "backend/cuda/kernel_args.h"
#include "backend/cuda/kernel_launchers.h"

namespace fp4serve::bench {

struct DecodeVariant {
  const char* name;
  // Whether the tensor cores accumulate (wgmma): parity then allows their ~14-bit sums.
  bool tensor_core_accumulation;
  bool (*takes)(const cuda::DenseGemmArgs& args);
  cuda::SkinnyPlan (*plan)(const cuda::DenseGemmArgs& args, int num_sms);
  cudaError_t (*launch)(const cuda::DenseGemmArgs& args, const cuda::SkinnyPlan& plan, const cuda::Scratch& scratch,
                        cudaStream_t stream);
};

extern const DecodeVariant kDecodeOnMmaSync;         // 01_decode_mma_sync.cpp
extern const DecodeVariant kWgmmaDecodePrefetch;     // 02_wgmma_decode_prefetch.cu
extern const DecodeVariant kSkinnyBurst4OneCtaPerSm;  // 03_skinny_burst4_one_cta.cu

// Every variant above, in file order.
const std::vector<const DecodeVariant*>& decode_variants();

}  // namespace fp4serve::bench
