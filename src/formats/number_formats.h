// Scalar number formats, bit-exact: BF16, F16, FP8 E4M3FN / E5M2 / E8M0, FP4 E2M1. The one
// definition of these formats in the project: the checkpoint tools and both backends use it.
// Pure functions on raw bit patterns, following the OCP Microscaling Formats (MX) v1.0 spec
// (E4M3, E2M1, E8M0) and IEEE 754 (F16); BF16 is the top half of an IEEE binary32.
// Every encoder rounds to nearest, ties to even, unless its comment says otherwise. The
// conversions the CPU kernels call per element are inline here; the rest are out of line.
#pragma once

#include <array>
#include <bit>
#include <cstdint>

namespace fp4serve {

// ---- 16-bit floats -------------------------------------------------------------------------

inline float decode_bf16(uint16_t bits) { return std::bit_cast<float>(uint32_t{bits} << 16); }

// Round to nearest even; overflow gives ±Inf (IEEE); NaN stays NaN (sign and top payload bits
// kept, quiet bit set).
inline uint16_t encode_bf16(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) {
    // Truncating a NaN could clear every payload bit left and make it Inf: set the quiet bit.
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  // Adding 0x7FFF plus the kept LSB rounds the dropped half to nearest, ties to even; a carry
  // propagates into the exponent (up to Inf), which is exactly IEEE rounding.
  const uint32_t lsb = (bits >> 16) & 1u;
  return static_cast<uint16_t>((bits + 0x7FFFu + lsb) >> 16);
}

// The value a bf16 store of `x` keeps: the reference model rounds every bf16 tensor so.
inline float round_bf16(float x) { return decode_bf16(encode_bf16(x)); }

float decode_f16(uint16_t bits);
// IEEE binary16: round to nearest even, overflow (>= 65520) gives ±Inf, NaN stays NaN.
uint16_t encode_f16(float x);

// ---- FP8 E4M3FN (OCP "E4M3FN", torch.float8_e4m3fn) ----------------------------------------
// s eeee mmm, bias 7, no Inf, NaN = 0x7F / 0xFF, max finite ±448 (0x7E / 0xFE).

// The value of each E4M3 code, built at compile time from the bit-level definition; the CPU
// kernels gather through it.
inline constexpr std::array<float, 256> kE4M3Values = [] {
  std::array<float, 256> values{};
  for (uint32_t code = 0; code < 256; ++code) {
    const uint32_t sign = (code & 0x80u) << 24;
    const uint32_t exponent = (code >> 3) & 0xFu;
    const uint32_t mantissa = code & 0x7u;
    if ((code & 0x7F) == 0x7F) {
      values[code] = std::bit_cast<float>(sign | 0x7FC00000u);  // NaN
    } else if (exponent != 0) {
      values[code] = std::bit_cast<float>(sign | ((exponent + 120u) << 23) | (mantissa << 20));
    } else {
      // Subnormal: mantissa * 2^-9 (the classic decoder bug is to use the normal formula here).
      const float magnitude = static_cast<float>(mantissa) * 0x1p-9f;
      values[code] = sign != 0 ? -magnitude : magnitude;
    }
  }
  return values;
}();

inline float decode_e4m3(uint8_t code) { return kE4M3Values[code]; }

// What an E4M3 encode does with values beyond the largest finite one.
enum class E4M3Overflow : uint8_t {
  kSaturate,  // PTX cvt.rn.satfinite: |x| > 448 and ±Inf give ±448; NaN gives 0x7F
  kToNaN,     // PyTorch's cast: |x| > 464 (the midpoint above 448) and ±Inf give NaN
              // (sign kept: 0x7F / 0xFF); NaN gives NaN with the input's sign
};
// Inline: the CPU kernels quantize activations with it element by element.
inline uint8_t encode_e4m3(float x, E4M3Overflow overflow = E4M3Overflow::kSaturate) {
  constexpr uint32_t kMaxFinite = 0x7E, kNaN = 0x7F;  // 448, NaN
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint32_t sign = (bits >> 24) & 0x80u, magnitude = bits & 0x7FFFFFFFu;
  const bool saturate = overflow == E4M3Overflow::kSaturate;
  if (magnitude > 0x7F800000u) return static_cast<uint8_t>(saturate ? kNaN : (sign | kNaN));
  const uint32_t too_large = saturate ? kMaxFinite : kNaN;
  uint32_t code;
  if (magnitude < 0x3C800000u) {
    // Below 2^-6, the smallest normal: a whole number of 2^-9 steps. Adding 1.5 * 2^23 to
    // |x| * 2^9 (< 8, exact) rounds it to an integer, ties to even, in the float unit; 8 is
    // the smallest normal's code.
    const float steps = (std::bit_cast<float>(magnitude) * 512.0f + 12582912.0f) - 12582912.0f;
    code = static_cast<uint32_t>(steps);
  } else {
    // Keep 3 mantissa bits, rounding the 20 dropped ones to nearest, ties to even (a carry
    // moves into the exponent), then rebias the exponent from 127 to 7. Inf and anything that
    // rounds past 448 (|x| > 464; 464 ties to the even 448) lands above kMaxFinite.
    const uint32_t rounded = magnitude + 0x7FFFFu + ((magnitude >> 20) & 1u);
    code = (rounded >> 20) - (120u << 3);
    if (code > kMaxFinite) code = too_large;
  }
  return static_cast<uint8_t>(sign | code);
}

// ---- FP8 E5M2 (torch.float8_e5m2): s eeeee mm, bias 15, the top byte of an IEEE binary16 ---
float decode_e5m2(uint8_t code);

// ---- E8M0 (OCP "E8M0", torch.float8_e8m0fnu, DeepSeek "ue8m0") ------------------------------
// 8 exponent bits, no sign, no zero: 2^(e - 127) for e in 0..254 (0x00 = 2^-127, an fp32
// denormal); 0xFF = NaN.

inline float decode_e8m0(uint8_t code) {
  if (code == 0xFF) return std::bit_cast<float>(0x7FC00000u);  // NaN
  if (code == 0) return std::bit_cast<float>(0x00400000u);      // 2^-127 is an fp32 denormal
  return std::bit_cast<float>(uint32_t{code} << 23);
}

// The scale rule of DeepSeek's ue8m0 (and DeepGEMM's ceil_to_ue8m0): the smallest power of two
// >= x, i.e. 2^ceil(log2 x), so that dividing by it never pushes a block past the format's
// maximum. x <= 2^-127 (zero included) gives 0x00. Throws Error for NaN, negative x or
// x > 2^127 (no E8M0 scale is that large).
uint8_t encode_e8m0_ceil(float x);

// encode_e8m0_ceil without its checks, for kernels whose x is a positive normal float by
// construction (an amax clamped from below, divided by the format's maximum): the exponent
// field, plus one unless the mantissa is zero (DeepSeek's fast_round_scale in
// inference/kernel.py). An x above 2^127 gives 0xFF (NaN).
inline uint8_t encode_e8m0_ceil_of_normal(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint32_t field = (bits >> 23) & 0xFFu;
  const uint32_t code = field + ((bits & 0x7FFFFFu) != 0 ? 1u : 0u);
  return static_cast<uint8_t>(code > 0xFFu ? 0xFFu : code);
}

// PyTorch's float -> float8_e8m0fnu cast, kept only to cross-check and document the
// difference: it rounds the significand to the nearest power of two by its top mantissa bit
// (1.49 -> 1, 1.5 -> 2, 0.75 -> 1, 0.3 -> 0.25), which is neither ceil nor floor. The sign is
// ignored; NaN and ±Inf give 0xFF. Never use it to choose a scale.
uint8_t encode_e8m0_torch(float x);

// ---- FP4 E2M1 (float4_e2m1fn) ----------------------------------------------------------------
// A 4-bit code: bit 3 = sign, bits 2..0 index the magnitudes {0, .5, 1, 1.5, 2, 3, 4, 6}.
// 0x8 is -0. Two codes per byte, element 2j in the low nibble, 2j+1 in the high nibble.

// The value of each 4-bit code, for kernels that look codes up (SIMD shuffles included).
inline constexpr float kE2M1Values[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                          -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

// Decodes the low 4 bits of `nibble` (the high bits are ignored).
inline float decode_e2m1(uint8_t nibble) { return kE2M1Values[nibble & 0x0F]; }
// Round to nearest, ties to the even code (0.25 -> 0, 0.75 -> 1, 1.25 -> 1, 1.75 -> 2, 2.5 -> 2,
// 3.5 -> 4, 5 -> 4), saturating |x| > 6 and ±Inf to ±6; the sign is kept, so negative values
// that round to zero give 0x8 (-0). NaN gives 0x7 (E2M1 has no NaN; matches NVIDIA's
// cuda_fp4.h satfinite conversion).
// Inline: the CPU kernels quantize activations with it element by element.
inline uint8_t encode_e2m1(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const float a = std::bit_cast<float>(bits & 0x7FFFFFFFu);
  // One comparison per boundary between neighbouring magnitudes; at a midpoint the even code
  // wins (> where the lower code is even, >= where the upper one is). Past 5, and Inf, give 6.
  const uint32_t code = (a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f) + (a > 2.5f) + (a >= 3.5f) + (a > 5.0f);
  // NaN fails every comparison; it gives +6, as NVIDIA's satfinite cvt does.
  const bool nan = a != a;
  return static_cast<uint8_t>(nan ? 0x7u : (((bits >> 28) & 0x8u) | code));
}

inline uint8_t pack_e2m1(uint8_t even, uint8_t odd) {
  return static_cast<uint8_t>((even & 0x0F) | ((odd & 0x0F) << 4));
}
inline uint8_t e2m1_even(uint8_t packed) { return packed & 0x0F; }
inline uint8_t e2m1_odd(uint8_t packed) { return packed >> 4; }

}  // namespace fp4serve
