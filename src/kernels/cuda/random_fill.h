// Random device data in a chosen format (random_fill.cu), for the kernel workbench.
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

}  // namespace fp4serve::cuda
