// Register-level decoding of 4-bit weights into F16/BF16 MMA operands, exactly.
//
// E2M1 -> F16 without conversion instructions: a nibble s.e1.e0.m placed at bits 15..12 of
// a 16-bit lane becomes an F16 of value * 2^-14 after keeping the sign and shifting the three
// magnitude bits right by 3 (e1.e0 land in the low exponent bits, m in the top mantissa bit;
// the subnormal 0.5 lands on the F16 subnormal 2^-15). Four shifts of one 32-bit word give
// all eight codes, paired (e3,e7), (e2,e6), (e1,e5), (e0,e4) where e_i is element i of the
// word (element 2j in the low nibble of byte j). The activations are staged in the same order.
//
// Block scales are folded in before the MMA with one F16 multiply per pair, which is exact:
//  - NVFP4: multiplier E4M3(sf) * 2^7 (<= 57344, an F16); product = value * sf * 2^-7 has at
//    most 6 significant bits and lies in [2^-17, 21], so it is an F16 value. The kernel
//    multiplies the result by global_scale * 2^7.
//  - MXFP4: the four 32-blocks a quad of threads feeds into one MMA share a reference
//    exponent r = max of their E8M0 bytes; multiplier 2^(14 - (r - e)); product = value *
//    2^-(r - e), exact while r - e <= 23 (a block 2^23 times smaller than its neighbours
//    loses low bits; real checkpoints stay far inside). The kernel multiplies by 2^(r - 127).
#pragma once

#include <cstdint>

namespace fp4serve::cuda {

// Eight E2M1 codes -> four F16x2 registers of value * 2^-14, in the pair order above.
__device__ __forceinline__ void e2m1x8_to_f16x2(uint32_t word, uint32_t (&pairs)[4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    pairs[i] = (word & 0x80008000u) | ((word & 0x70007000u) >> 3);
    word <<= 4;
  }
}

__device__ __forceinline__ uint32_t mul_f16x2(uint32_t a, uint32_t b) {
  uint32_t out;
  asm("mul.rn.f16x2 %0, %1, %2;\n" : "=r"(out) : "r"(a), "r"(b));
  return out;
}

// Both halves set to the F16 bit pattern `h`.
__device__ __forceinline__ uint32_t splat_f16(uint32_t h) { return h | (h << 16); }

// F16 bits of 2^(14 - d) for d >= 0: normal down to 2^-14, subnormal down to 2^-24, then 0.
__device__ __forceinline__ uint32_t mxfp4_f16_multiplier(int d) {
  if (d <= 28) return static_cast<uint32_t>(29 - d) << 10;
  if (d <= 38) return 1u << (38 - d);
  return 0u;
}

// 2^(e - 127) as a float for an E8M0 byte; 0xFF is NaN.
__device__ __forceinline__ float e8m0_to_float(uint32_t e) {
  if (e == 0xFFu) return __int_as_float(0x7FC00000);
  if (e == 0u) return __int_as_float(0x00400000);
  return __int_as_float(static_cast<int>(e << 23));
}

// Two E4M3 NVFP4 block scales (low byte = first block) -> F16x2 of sf * 2^7.
__device__ __forceinline__ uint32_t nvfp4_f16_multipliers(uint32_t two_scale_bytes) {
  uint32_t sf;
  const uint16_t in = static_cast<uint16_t>(two_scale_bytes);
  asm("cvt.rn.f16x2.e4m3x2 %0, %1;\n" : "=r"(sf) : "h"(in));
  return mul_f16x2(sf, 0x58005800u);  // 2^7 = 0x5800 in F16
}

// F16x2 -> BF16x2; exact for the decoded weights (at most 8 significant bits, normal range).
__device__ __forceinline__ uint32_t f16x2_to_bf16x2(uint32_t h) {
  float lo, hi;
  asm("cvt.f32.f16 %0, %1;\n" : "=f"(lo) : "h"(static_cast<uint16_t>(h & 0xFFFFu)));
  asm("cvt.f32.f16 %0, %1;\n" : "=f"(hi) : "h"(static_cast<uint16_t>(h >> 16)));
  uint32_t out;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(out) : "f"(hi), "f"(lo));
  return out;
}

// Eight consecutive E4M3 activations (lo = x0..x3, hi = x4..x7) -> F16x2 pairs in the weight
// pair order: (x3,x7), (x2,x6), (x1,x5), (x0,x4).
__device__ __forceinline__ void e4m3x8_to_f16x2_paired(uint32_t lo, uint32_t hi, uint32_t (&pairs)[4]) {
  const uint32_t p01 = __byte_perm(lo, hi, 0x6273);  // bytes x3, x7, x2, x6
  const uint32_t p23 = __byte_perm(lo, hi, 0x4051);  // bytes x1, x5, x0, x4
  uint32_t out;
  asm("cvt.rn.f16x2.e4m3x2 %0, %1;\n" : "=r"(out) : "h"(static_cast<uint16_t>(p01 & 0xFFFFu)));
  pairs[0] = out;
  asm("cvt.rn.f16x2.e4m3x2 %0, %1;\n" : "=r"(out) : "h"(static_cast<uint16_t>(p01 >> 16)));
  pairs[1] = out;
  asm("cvt.rn.f16x2.e4m3x2 %0, %1;\n" : "=r"(out) : "h"(static_cast<uint16_t>(p23 & 0xFFFFu)));
  pairs[2] = out;
  asm("cvt.rn.f16x2.e4m3x2 %0, %1;\n" : "=r"(out) : "h"(static_cast<uint16_t>(p23 >> 16)));
  pairs[3] = out;
}

// Eight consecutive 16-bit activations (four registers, two per register, low half first)
// -> the same pair order: (x3,x7), (x2,x6), (x1,x5), (x0,x4).
__device__ __forceinline__ void b16x8_paired(const uint32_t (&v)[4], uint32_t (&pairs)[4]) {
  pairs[0] = __byte_perm(v[1], v[3], 0x7632);  // x3 (v1 high), x7 (v3 high)
  pairs[1] = __byte_perm(v[1], v[3], 0x5410);  // x2, x6
  pairs[2] = __byte_perm(v[0], v[2], 0x7632);  // x1, x5
  pairs[3] = __byte_perm(v[0], v[2], 0x5410);  // x0, x4
}

}  // namespace fp4serve::cuda
