// Thin wrappers over the PTX instructions the Hopper kernels are built from: warp-level
// tensor-core MMAs (mma.sync), FP8 -> F16 conversion, ldmatrix, cp.async and streaming
// loads. Fragment layouts are the PTX ISA's ("Matrix Fragments for mma.m16n8k16/k32"):
//   lane = 4 * g + t  (g = groupID 0..7, t = threadID_in_group 0..3)
//   A 16xK row-major: a[0] row g, a[1] row g+8, a[2] row g (upper k half), a[3] row g+8 (upper)
//   B Kx8 column-major: b[0] column g (lower k half), b[1] column g (upper k half)
//   C 16x8: c[0], c[1] row g, columns 2t, 2t+1; c[2], c[3] row g+8, same columns
// Within one MMA the k positions a thread holds in A and in B are the same ones, so any
// permutation of k applied to both operands alike leaves the product unchanged. The kernels
// use that freedom to feed weights in the order they arrive from memory.
#pragma once

#include <cstdint>

namespace fp4serve::cuda {

// D = A(16x32 E4M3) * B(32x8 E4M3) + C, fp32 accumulate.
__device__ __forceinline__ void mma_e4m3_16x8x32(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// D = A(16x16 F16) * B(16x8 F16) + C, fp32 accumulate.
__device__ __forceinline__ void mma_f16_16x8x16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// D = A(16x16 BF16) * B(16x8 BF16) + C, fp32 accumulate.
__device__ __forceinline__ void mma_bf16_16x8x16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two E4M3 values (low byte first) -> two F16 values in one register. Exact: every E4M3
// value, subnormals included, is an F16 value.
__device__ __forceinline__ uint32_t e4m3x2_to_f16x2(uint32_t two_bytes) {
  uint32_t out;
  const uint16_t in = static_cast<uint16_t>(two_bytes);
  asm("cvt.rn.f16x2.e4m3x2 %0, %1;\n" : "=r"(out) : "h"(in));
  return out;
}

__device__ __forceinline__ uint32_t byte_perm(uint32_t lo, uint32_t hi, uint32_t selector) {
  return __byte_perm(lo, hi, selector);
}

// 16-byte load that bypasses L1 and is not kept there: weights are read exactly once.
__device__ __forceinline__ uint4 load_streaming_16(const void* ptr) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(ptr));
  return v;
}

__device__ __forceinline__ uint32_t smem_address(const void* ptr) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(ptr));
}

// Four 8x8 b16 matrices from shared memory; lane l supplies the row address of matrix l/8.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// Asynchronous 16-byte global -> shared copy; `bytes` < 16 zero-fills the rest (0 = all zeros).
__device__ __forceinline__ void cp_async_16(uint32_t smem, const void* global, uint32_t bytes = 16) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem), "l"(global), "r"(bytes));
}
// 4- and 8-byte asynchronous copies (through L1), `bytes` < size zero-fills.
__device__ __forceinline__ void cp_async_4(uint32_t smem, const void* global, uint32_t bytes = 4) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem), "l"(global), "r"(bytes));
}
__device__ __forceinline__ void cp_async_8(uint32_t smem, const void* global, uint32_t bytes = 8) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(smem), "l"(global), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

}  // namespace fp4serve::cuda
