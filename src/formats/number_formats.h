// Scalar number formats, bit-exact: BF16, F16, FP8 E4M3FN / E5M2 / E8M0, FP4 E2M1.
// Pure functions on raw bit patterns; definitions in shared/spec/formats-and-kernels.md §3.
// Every encoder rounds to nearest, ties to even, unless its comment says otherwise.
#pragma once

#include <cstdint>

namespace fp4serve {

// ---- 16-bit floats -------------------------------------------------------------------------

float decode_bf16(uint16_t bits);
// Round to nearest even; overflow gives ±Inf (IEEE); NaN stays NaN (sign and top payload bits
// kept, quiet bit set).
uint16_t encode_bf16(float x);

float decode_f16(uint16_t bits);
// IEEE binary16: round to nearest even, overflow (>= 65520) gives ±Inf, NaN stays NaN.
uint16_t encode_f16(float x);

// ---- FP8 E4M3FN (OCP "E4M3FN", torch.float8_e4m3fn) ----------------------------------------
// s eeee mmm, bias 7, no Inf, NaN = 0x7F / 0xFF, max finite ±448 (0x7E / 0xFE).

float decode_e4m3(uint8_t code);

// What an E4M3 encode does with values beyond the largest finite one.
enum class E4M3Overflow : uint8_t {
  kSaturate,  // PTX cvt.rn.satfinite: |x| > 448 and ±Inf give ±448; NaN gives 0x7F
  kToNaN,     // PyTorch's cast: |x| > 464 (the midpoint above 448) and ±Inf give NaN
              // (sign kept: 0x7F / 0xFF); NaN gives NaN with the input's sign
};
uint8_t encode_e4m3(float x, E4M3Overflow overflow = E4M3Overflow::kSaturate);

// ---- FP8 E5M2 (torch.float8_e5m2): s eeeee mm, bias 15, the top byte of an IEEE binary16 ---
float decode_e5m2(uint8_t code);

// ---- E8M0 (OCP "E8M0", torch.float8_e8m0fnu, DeepSeek "ue8m0") ------------------------------
// 8 exponent bits, no sign, no zero: 2^(e - 127) for e in 0..254 (0x00 = 2^-127, an fp32
// denormal); 0xFF = NaN.

float decode_e8m0(uint8_t code);

// The scale rule of DeepSeek's ue8m0 (and DeepGEMM's ceil_to_ue8m0): the smallest power of two
// >= x, i.e. 2^ceil(log2 x), so that dividing by it never pushes a block past the format's
// maximum. x <= 2^-127 (zero included) gives 0x00. Throws Error for NaN, negative x or
// x > 2^127 (no E8M0 scale is that large).
uint8_t encode_e8m0_ceil(float x);

// PyTorch's float -> float8_e8m0fnu cast, kept only to cross-check and document the
// difference: it rounds the significand to the nearest power of two by its top mantissa bit
// (1.49 -> 1, 1.5 -> 2, 0.75 -> 1, 0.3 -> 0.25), which is neither ceil nor floor. The sign is
// ignored; NaN and ±Inf give 0xFF. Never use it to choose a scale.
uint8_t encode_e8m0_torch(float x);

// ---- FP4 E2M1 (float4_e2m1fn) ----------------------------------------------------------------
// A 4-bit code: bit 3 = sign, bits 2..0 index the magnitudes {0, .5, 1, 1.5, 2, 3, 4, 6}.
// 0x8 is -0. Two codes per byte, element 2j in the low nibble, 2j+1 in the high nibble.

// Decodes the low 4 bits of `nibble` (the high bits are ignored).
float decode_e2m1(uint8_t nibble);
// Round to nearest, ties to the even code (0.25 -> 0, 0.75 -> 1, 1.25 -> 1, 1.75 -> 2, 2.5 -> 2,
// 3.5 -> 4, 5 -> 4), saturating |x| > 6 and ±Inf to ±6; the sign is kept, so negative values
// that round to zero give 0x8 (-0). NaN gives 0x7 (E2M1 has no NaN; matches NVIDIA's
// cuda_fp4.h satfinite conversion).
uint8_t encode_e2m1(float x);

inline uint8_t pack_e2m1(uint8_t even, uint8_t odd) {
  return static_cast<uint8_t>((even & 0x0F) | ((odd & 0x0F) << 4));
}
inline uint8_t e2m1_even(uint8_t packed) { return packed & 0x0F; }
inline uint8_t e2m1_odd(uint8_t packed) { return packed >> 4; }

}  // namespace fp4serve
