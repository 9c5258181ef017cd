// Scalar number formats the CPU kernels decode and round to: bfloat16, IEEE half,
// E4M3 (FP8), E2M1 (FP4) and E8M0 (power-of-two scales). Bit-level definitions in
// ../shared/spec/formats-and-kernels.md §3. All rounding is to nearest, ties to even.
#pragma once

#include <cstdint>
#include <cstring>

namespace fp4serve::cpu {

inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float bf16_to_float(uint16_t b) { return bits_to_float(static_cast<uint32_t>(b) << 16); }
inline uint16_t float_to_bf16(float f) {
  uint32_t u = float_to_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
// The value a bf16 store of `f` keeps: the reference rounds every bf16 tensor so.
inline float round_bf16(float f) { return bf16_to_float(float_to_bf16(f)); }

float half_to_float(uint16_t h);

// E4M3 (OCP E4M3FN) byte -> value; 0x7F / 0xFF are NaN.
const float* e4m3_table();  // 256 entries
inline float e4m3_to_float(uint8_t b) { return e4m3_table()[b]; }
// Nearest E4M3 value of |x| <= 448 (callers clamp first), ties to even.
float round_to_e4m3(float x);

// E2M1 nibble -> value: bit 3 is the sign, bits 0-2 index {0, .5, 1, 1.5, 2, 3, 4, 6}.
inline constexpr float kE2M1Values[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                          -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
// Nearest E2M1 value of |x| <= 6 (callers clamp first), ties to the even code.
float round_to_e2m1(float x);

// E8M0 byte -> 2^(e - 127); 255 is NaN.
inline float e8m0_to_float(uint8_t e) {
  if (e == 0xFF) return bits_to_float(0x7FC00000u);
  if (e == 0) return 0x1p-127f;  // an fp32 subnormal, not expressible as exponent bits
  return bits_to_float(static_cast<uint32_t>(e) << 23);
}

// 2^ceil(log2(t)) for positive normal fp32 t, from the exponent bits (DeepSeek's
// fast_round_scale: exponent + 1 unless the mantissa is zero).
inline float pow2_ceil(float t) {
  const uint32_t u = float_to_bits(t);
  const int32_t exp = static_cast<int32_t>((u >> 23) & 0xFF) - 127 + ((u & 0x7FFFFFu) != 0 ? 1 : 0);
  return bits_to_float(static_cast<uint32_t>(exp + 127) << 23);
}

}  // namespace fp4serve::cpu
