// IEEE binary16 (F16) encode/decode (BF16 is inline in number_formats.h).
#include <bit>
#include <cstdint>

#include "formats/number_formats.h"

namespace fp4serve {
namespace {

// Round-to-nearest-even from float32 onto the F16 grid, written for any narrower binary format.

// Float bits with the sign cleared.
inline uint32_t magnitude_bits(float x) { return std::bit_cast<uint32_t>(x) & 0x7FFFFFFFu; }
inline bool sign_bit(float x) { return (std::bit_cast<uint32_t>(x) >> 31) != 0; }

// Shifts `value` right by `shift` bits, rounding to nearest, ties to even.
inline uint64_t shift_right_rne(uint64_t value, int shift) {
  if (shift >= 63) return 0;  // value < 2^24 here, so it is below half of one unit
  const uint64_t kept = value >> shift;
  const uint64_t dropped = value & ((uint64_t{1} << shift) - 1);
  const uint64_t half = uint64_t{1} << (shift - 1);
  return (dropped > half || (dropped == half && (kept & 1))) ? kept + 1 : kept;
}

// Magnitude code of the nearest (ties to even) value of a format with `mantissa_bits` stored
// mantissa bits and smallest normal exponent `min_exponent` (subnormals below it), as if its
// exponent range were unbounded above: (biased exponent << mantissa_bits) | mantissa, biased
// exponent 0 for subnormals. `abs_bits` must be a finite, non-negative float's bits. A result
// past the format's largest code means overflow; the caller decides what that becomes.
inline uint32_t round_magnitude(uint32_t abs_bits, int mantissa_bits, int min_exponent) {
  const uint32_t field = abs_bits >> 23;
  const uint64_t significand = (abs_bits & 0x7FFFFFu) | (field != 0 ? 0x800000u : 0u);
  const int exponent = field != 0 ? static_cast<int>(field) - 127 : -126;  // value = sig * 2^(exponent-23)
  if (exponent >= min_exponent) {
    // Normal in the target: keep mantissa_bits below the leading one. A carry out of the
    // mantissa lands in the exponent field by itself.
    const uint64_t units = shift_right_rne(significand, 23 - mantissa_bits);
    const uint32_t biased = static_cast<uint32_t>(exponent - min_exponent + 1);
    return static_cast<uint32_t>((uint64_t{biased} << mantissa_bits) + units - (uint64_t{1} << mantissa_bits));
  }
  // Subnormal in the target: count units of 2^(min_exponent - mantissa_bits). Rounding up to
  // 1 << mantissa_bits yields the smallest normal code, as it should.
  const int shift = 23 - mantissa_bits + (min_exponent - exponent);
  return static_cast<uint32_t>(shift_right_rne(significand, shift));
}

}  // namespace

float decode_f16(uint16_t bits) {
  const uint32_t sign = uint32_t{bits & 0x8000u} << 16;
  const uint32_t exponent = (bits >> 10) & 0x1Fu;
  const uint32_t mantissa = bits & 0x3FFu;
  if (exponent == 0x1F) return std::bit_cast<float>(sign | 0x7F800000u | (mantissa << 13));  // Inf/NaN
  if (exponent != 0) return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  // Subnormal: mantissa * 2^-24, exact in float.
  const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
  return sign != 0 ? -magnitude : magnitude;
}

uint16_t encode_f16(float x) {
  const uint16_t sign = sign_bit(x) ? 0x8000u : 0u;
  const uint32_t magnitude = magnitude_bits(x);
  if (magnitude > 0x7F800000u) {
    // NaN: keep the top payload bits and force the quiet bit so it cannot become Inf.
    return static_cast<uint16_t>(sign | 0x7E00u | ((magnitude >> 13) & 0x3FFu));
  }
  if (magnitude == 0x7F800000u) return static_cast<uint16_t>(sign | 0x7C00u);
  const uint32_t code = round_magnitude(magnitude, 10, -14);
  return static_cast<uint16_t>(sign | (code >= 0x7C00u ? 0x7C00u : code));  // overflow -> Inf
}

}  // namespace fp4serve
