// Activation quantization for the FP8 GEMMs: DeepSeek's act_quant (per 1x128 block, power-of-
// two scale) on the GPU. Matches formats/activation_quantization.h (ActivationScale::kUe8m0)
// bit for bit: scale = 2^ceil(log2(max(amax, 1e-4) / 448)) with amax over the finite
// elements, code = E4M3(clamp(x / scale, ±448)) rounded to nearest even, NaN/Inf -> 0x7F.
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/kernel_launchers.h"

namespace fp4serve::cuda {
namespace {

__device__ __forceinline__ float finite_abs(float v) { return isfinite(v) ? fabsf(v) : 0.0f; }

// The smallest power of two >= q (q a positive normal float), as a float.
__device__ __forceinline__ float ceil_pow2(float q) {
  const uint32_t bits = __float_as_uint(q);
  uint32_t exponent = bits >> 23;
  if (bits & 0x7FFFFFu) ++exponent;
  return __uint_as_float(exponent << 23);
}

__device__ __forceinline__ uint8_t to_e4m3(float v) {
  if (!isfinite(v)) return 0x7F;
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3));
}

// One warp per 128-element block; each lane owns 4 consecutive elements.
__global__ void quantize_fp8_kernel(const __nv_bfloat16* __restrict__ x, int64_t x_stride, int64_t rows,
                                    int64_t blocks_per_row, uint8_t* __restrict__ q, int64_t q_stride,
                                    float* __restrict__ scales) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t blk = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
       blk < rows * blocks_per_row; blk += warps) {
    const int64_t row = blk / blocks_per_row, col = (blk % blocks_per_row) * 128 + lane * 4;
    const uint2 raw = *reinterpret_cast<const uint2*>(x + row * x_stride + col);
    const float v[4] = {__uint_as_float(raw.x << 16), __uint_as_float(raw.x & 0xFFFF0000u),
                        __uint_as_float(raw.y << 16), __uint_as_float(raw.y & 0xFFFF0000u)};
    float amax = fmaxf(fmaxf(finite_abs(v[0]), finite_abs(v[1])), fmaxf(finite_abs(v[2]), finite_abs(v[3])));
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, off));
    const float scale = ceil_pow2(fmaxf(amax, 1e-4f) / 448.0f);
    const float inverse = 1.0f / scale;  // exact: a power of two
    uint32_t packed = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) packed |= static_cast<uint32_t>(to_e4m3(v[i] * inverse)) << (8 * i);
    *reinterpret_cast<uint32_t*>(q + row * q_stride + col) = packed;
    if (lane == 0) scales[blk] = scale;
  }
}

}  // namespace

cudaError_t launch_quantize_activations_fp8(const void* x_bf16, int64_t x_stride, int64_t rows, int64_t cols,
                                            void* q, int64_t q_stride, float* scales, cudaStream_t stream) {
  const int64_t blocks = rows * (cols / 128);
  if (blocks == 0) return cudaSuccess;
  const int threads = 256;
  const int64_t grid = (blocks + (threads / 32) - 1) / (threads / 32);
  quantize_fp8_kernel<<<static_cast<unsigned>(grid < 65535 * 8 ? grid : 65535 * 8), threads, 0, stream>>>(
      static_cast<const __nv_bfloat16*>(x_bf16), x_stride, rows, cols / 128, static_cast<uint8_t*>(q), q_stride,
      scales);
  return cudaGetLastError();
}

}  // namespace fp4serve::cuda
