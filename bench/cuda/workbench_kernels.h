// Device-side helpers of the kernel workbench (workbench_kernels.cu): random data in a chosen
// format, and the copy kernel that measures the bandwidth the GEMMs are compared with.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace fp4serve::cuda {

enum class FillKind : int {
  kAnyByte,     // every byte value (packed FP4 nibbles)
  kE4M3Finite,  // E4M3 codes without NaN
  kE8M0Scale,   // E8M0 scales 2^-7 .. 2^0
  kE4M3Scale,   // positive E4M3 block scales 0.5 .. 0.94
  kBF16,        // bf16 values, |v| in [1/8, 8)
  kPow2Float,   // float powers of two 2^-8 .. 2^-1
};

cudaError_t fill_random(void* data, int64_t bytes, uint64_t seed, FillKind kind, cudaStream_t stream);

// dst = src with 16-byte loads and stores over a grid of `ctas` CTAs; bytes % 16 == 0.
cudaError_t copy_device(const void* src, void* dst, int64_t bytes, int ctas, cudaStream_t stream);

}  // namespace fp4serve::cuda
