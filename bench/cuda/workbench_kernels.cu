// Workbench helpers: pseudo-random device data that are valid codes of a format (benchmarks
// time real data, never zeros, without copying gigabytes from the host), and a plain
// streaming copy kernel, the bandwidth reference of the decode GEMMs.
#include <cuda_runtime.h>

#include <cstdint>

#include "workbench_kernels.h"

namespace fp4serve::cuda {
namespace {

__device__ __forceinline__ uint32_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return static_cast<uint32_t>(x);
}

__device__ __forceinline__ uint8_t pick(FillKind kind, uint32_t r) {
  switch (kind) {
    case FillKind::kAnyByte: return static_cast<uint8_t>(r);
    case FillKind::kE4M3Finite: return static_cast<uint8_t>(r & 0xBF);  // exponent < 15: never NaN
    case FillKind::kE8M0Scale: return static_cast<uint8_t>(120 + (r & 7));
    case FillKind::kE4M3Scale: return static_cast<uint8_t>(0x30 + (r & 15));
    default: return 0;
  }
}

__global__ void fill_bytes_kernel(uint8_t* out, int64_t bytes, uint64_t seed, FillKind kind) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < bytes; i += stride) {
    out[i] = pick(kind, mix(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(i)));
  }
}

// bf16 values of magnitude in [2^-3, 2^3) with random sign and mantissa.
__global__ void fill_bf16_kernel(uint16_t* out, int64_t count, uint64_t seed) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    const uint32_t r = mix(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(i));
    const uint32_t exponent = 124 + (r >> 8) % 6;
    out[i] = static_cast<uint16_t>(((r & 1u) << 15) | (exponent << 7) | ((r >> 1) & 0x7F));
  }
}

// Power-of-two floats in [2^-8, 2^-1] (FP8 block scales).
__global__ void fill_pow2_kernel(float* out, int64_t count, uint64_t seed) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    const uint32_t r = mix(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(i));
    out[i] = __uint_as_float((119u + r % 8) << 23);
  }
}

__global__ void copy_kernel(const uint4* __restrict__ src, uint4* __restrict__ dst, int64_t count) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  // Four independent 16-byte loads in flight per thread.
  for (; i + 3 * stride < count; i += 4 * stride) {
    const uint4 a = src[i], b = src[i + stride], c = src[i + 2 * stride], d = src[i + 3 * stride];
    dst[i] = a;
    dst[i + stride] = b;
    dst[i + 2 * stride] = c;
    dst[i + 3 * stride] = d;
  }
  for (; i < count; i += stride) dst[i] = src[i];
}

}  // namespace

cudaError_t copy_device(const void* src, void* dst, int64_t bytes, int ctas, cudaStream_t stream) {
  copy_kernel<<<ctas, 512, 0, stream>>>(static_cast<const uint4*>(src), static_cast<uint4*>(dst), bytes / 16);
  return cudaGetLastError();
}

cudaError_t fill_random(void* data, int64_t bytes, uint64_t seed, FillKind kind, cudaStream_t stream) {
  if (bytes <= 0) return cudaSuccess;
  const int threads = 256;
  const int blocks = 1024;
  if (kind == FillKind::kBF16) {
    fill_bf16_kernel<<<blocks, threads, 0, stream>>>(static_cast<uint16_t*>(data), bytes / 2, seed);
  } else if (kind == FillKind::kPow2Float) {
    fill_pow2_kernel<<<blocks, threads, 0, stream>>>(static_cast<float*>(data), bytes / 4, seed);
  } else {
    fill_bytes_kernel<<<blocks, threads, 0, stream>>>(static_cast<uint8_t*>(data), bytes, seed, kind);
  }
  return cudaGetLastError();
}

}  // namespace fp4serve::cuda
