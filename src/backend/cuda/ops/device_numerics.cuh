// Device twins of the CPU's scalar number formats (formats/number_formats.h) and the
// reductions the ops share. The ops are compiled with -fmad=false (CMakeLists.txt), so a
// product and a sum round separately, as on the CPU (-ffp-contract=off).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace fp4serve::cuda::ops {

__device__ __forceinline__ float round_bf16(float f) { return __bfloat162float(__float2bfloat16_rn(f)); }

__device__ __forceinline__ float bf16_bits_to_float(uint16_t b) { return __uint_as_float(static_cast<uint32_t>(b) << 16); }

// Nearest E4M3 value of |x| <= 448 (ties to even), as encode_e4m3 (formats/number_formats.h).
__device__ __forceinline__ float round_e4m3(float x) {
  const uint32_t u = __float_as_uint(x), sign = u & 0x80000000u, mag = u & 0x7FFFFFFFu;
  if (mag >= 0x7F800000u) return x;
  if (mag < 0x3C800000u) {
    const float a = __uint_as_float(mag) * 512.0f;
    const float r = __fsub_rn(__fadd_rn(a, 12582912.0f), 12582912.0f);
    return __uint_as_float(__float_as_uint(r * (1.0f / 512.0f)) | sign);
  }
  const uint32_t rounded = (mag + 0x7FFFFu + ((mag >> 20) & 1u)) & ~0xFFFFFu;
  return __uint_as_float(rounded | sign);
}

__device__ __forceinline__ float e2m1_value(int code) {
  constexpr float kMagnitudes[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  const float m = kMagnitudes[code & 7];
  return (code & 8) ? -m : m;
}

// Nearest E2M1 value of |x| <= 6, ties to the even code, as encode_e2m1 (formats/number_formats.h).
__device__ __forceinline__ float round_e2m1(float x) {
  const float a = fabsf(x);
  const int code = (a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f) + (a > 2.5f) + (a >= 3.5f) + (a > 5.0f);
  const float m = e2m1_value(code);
  return signbit(x) ? -m : m;
}

// E4M3 byte -> value (0x7F / 0xFF are NaN).
__device__ __forceinline__ float e4m3_value(uint8_t b) {
  const uint32_t exp = (b >> 3) & 0xF, mant = b & 0x7;
  if (exp == 0xF && mant == 0x7) return __uint_as_float(0x7FC00000u);
  const float mag = exp == 0 ? static_cast<float>(mant) * 0x1p-9f
                             : __uint_as_float(((exp + 120) << 23) | (mant << 20));
  return (b & 0x80) ? -mag : mag;
}

__device__ __forceinline__ float e8m0_value(uint8_t e) {
  if (e == 0xFF) return __uint_as_float(0x7FC00000u);
  if (e == 0) return 0x1p-127f;
  return __uint_as_float(static_cast<uint32_t>(e) << 23);
}

// 2^ceil(log2(t)) from the exponent bits, as the CPU's power-of-two scale rule (formats/number_formats.h).
__device__ __forceinline__ float pow2_ceil(float t) {
  const uint32_t u = __float_as_uint(t);
  const int32_t exp = static_cast<int32_t>((u >> 23) & 0xFF) - 127 + ((u & 0x7FFFFFu) != 0 ? 1 : 0);
  return __uint_as_float(static_cast<uint32_t>(exp + 127) << 23);
}

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, off);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, off));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
// `shared` holds 32 floats; the block must call it uniformly.
__device__ __forceinline__ float block_sum(float v, float* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < warps; ++w) total += shared[w];
  return total;
}

__device__ __forceinline__ float block_max(float v, float* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float m = -INFINITY;
  for (int w = 0; w < warps; ++w) m = fmaxf(m, shared[w]);
  return m;
}

// RoPE of one interleaved pair at (c, s), results bf16 (the CPU's RopeTable::rotate).
__device__ __forceinline__ void rotate_pair(float* v, float c, float s, bool inverse) {
  if (inverse) s = -s;
  const float a = v[0], b = v[1];
  v[0] = round_bf16(a * c - b * s);
  v[1] = round_bf16(a * s + b * c);
}

}  // namespace fp4serve::cuda::ops

namespace fp4serve::cuda {
// Host side, defined in launch_check.cpp (the .cu files stay free of fmt): throws Error
// naming `what` when the last launch failed, or when `ok` is false.
void check_launch(const char* what);
void require(bool ok, const char* what);
}  // namespace fp4serve::cuda
