// Exact BF16 copies of 4-bit weights and FP8 activations for the BF16 wgmma prefill kernel
// (wgmma_gemm.cu). Every value is exact: E2M1 x E8M0 is a signed power of two times 1 or 1.5,
// E2M1 x E4M3 has at most 6 significant bits, and E4M3 x a float scale of act_quant (a power of
// two) keeps its 4 bits; BF16 has 8 and fp32's exponent range. NVFP4's per-tensor global scale
// is left to the GEMM's epilogue.
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "backend/cuda/kernel_launchers.h"
#include "backend/cuda/weight_decode.cuh"

namespace fp4serve::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float e4m3_to_float(uint32_t byte) {
  __nv_fp8_e4m3 v;
  v.__x = static_cast<__nv_fp8_storage_t>(byte);
  return static_cast<float>(v);
}

// E2M1 code (low nibble; sign in bit 3) -> float, built from its fields: exponent e > 0 gives
// 2^(e-1) * (1 + m/2), e = 0 gives 0 or 0.5 (0x3F000000).
__device__ __forceinline__ float e2m1_to_float(uint32_t code) {
  const uint32_t e = (code >> 1) & 3u, m = code & 1u;
  const uint32_t magnitude = e != 0u ? ((e + 126u) << 23) | (m << 22) : (m != 0u ? 0x3F000000u : 0u);
  return __uint_as_float(magnitude | ((code & 8u) << 28));
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// One thread per 8 elements (one 32-bit word of packed codes, element 2j in the low nibble of
// byte j); grid x over a row's groups, y over rows (strided), so no thread divides.
template <bool kNvfp4>
__global__ void widen_fp4_kernel(const uint8_t* w, const uint8_t* scale, int64_t n, int64_t k, uint4* out) {
  const int64_t grp = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (grp >= k / 8) return;
  for (int64_t row = blockIdx.y; row < n; row += gridDim.y) {
    const uint32_t word = __ldg(reinterpret_cast<const uint32_t*>(w + row * (k / 2)) + grp);
    const float s = kNvfp4 ? e4m3_to_float(__ldg(scale + row * (k / 16) + grp / 2))
                           : e8m0_to_float(__ldg(scale + row * (k / 32) + grp / 4));
    uint32_t packed[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      packed[j] = pack_bf16x2(e2m1_to_float(word >> (8 * j)) * s, e2m1_to_float(word >> (8 * j + 4)) * s);
    }
    out[row * (k / 8) + grp] = make_uint4(packed[0], packed[1], packed[2], packed[3]);
  }
}

__global__ void widen_fp8_kernel(const uint8_t* x, const float* x_scale, int64_t x_stride, int64_t m, int64_t k,
                                 uint4* out) {
  const int64_t grp = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (grp >= k / 8) return;
  for (int64_t row = blockIdx.y; row < m; row += gridDim.y) {
    const uint2 v = __ldg(reinterpret_cast<const uint2*>(x + row * x_stride) + grp);
    const float s = __ldg(x_scale + row * (k / 128) + grp / 16);
    const uint32_t words[2] = {v.x, v.y};
    uint32_t packed[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint32_t w = words[j / 2] >> (16 * (j % 2));
      packed[j] = pack_bf16x2(e4m3_to_float(w & 0xFFu) * s, e4m3_to_float((w >> 8) & 0xFFu) * s);
    }
    out[row * (k / 8) + grp] = make_uint4(packed[0], packed[1], packed[2], packed[3]);
  }
}

dim3 grid_for(int64_t rows, int64_t k) {
  return dim3(static_cast<unsigned>((k / 8 + kThreads - 1) / kThreads), static_cast<unsigned>(std::min<int64_t>(rows, 65535)));
}

}  // namespace

cudaError_t launch_widen_fp4_weight(WeightKind weight, const void* w, const void* w_scale, int64_t n, int64_t k,
                                    void* out, cudaStream_t stream) {
  if (k % 128 != 0 || (weight != WeightKind::kMXFP4 && weight != WeightKind::kNVFP4)) return cudaErrorInvalidValue;
  if (n == 0 || k == 0) return cudaSuccess;
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* sb = static_cast<const uint8_t*>(w_scale);
  if (weight == WeightKind::kNVFP4) {
    widen_fp4_kernel<true><<<grid_for(n, k), kThreads, 0, stream>>>(wb, sb, n, k, static_cast<uint4*>(out));
  } else {
    widen_fp4_kernel<false><<<grid_for(n, k), kThreads, 0, stream>>>(wb, sb, n, k, static_cast<uint4*>(out));
  }
  return cudaGetLastError();
}

cudaError_t launch_widen_fp8_activations(const void* x, const float* x_scale, int64_t x_stride, int64_t m, int64_t k,
                                         void* out, cudaStream_t stream) {
  if (k % 128 != 0 || x_stride % 8 != 0) return cudaErrorInvalidValue;
  if (m == 0 || k == 0) return cudaSuccess;
  widen_fp8_kernel<<<grid_for(m, k), kThreads, 0, stream>>>(static_cast<const uint8_t*>(x), x_scale, x_stride, m,
                                                               k, static_cast<uint4*>(out));
  return cudaGetLastError();
}

}  // namespace fp4serve::cuda
