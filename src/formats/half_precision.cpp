// IEEE binary16 (F16) encode/decode (BF16 is inline in number_formats.h).
#include <bit>
#include <cstdint>

#include "formats/minifloat_rounding.h"
#include "formats/number_formats.h"

namespace fp4serve {

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
  const uint16_t sign = minifloat::sign_bit(x) ? 0x8000u : 0u;
  const uint32_t magnitude = minifloat::magnitude_bits(x);
  if (magnitude > 0x7F800000u) {
    // NaN: keep the top payload bits and force the quiet bit so it cannot become Inf.
    return static_cast<uint16_t>(sign | 0x7E00u | ((magnitude >> 13) & 0x3FFu));
  }
  if (magnitude == 0x7F800000u) return static_cast<uint16_t>(sign | 0x7C00u);
  const uint32_t code = minifloat::round_magnitude(magnitude, 10, -14);
  return static_cast<uint16_t>(sign | (code >= 0x7C00u ? 0x7C00u : code));  // overflow -> Inf
}

}  // namespace fp4serve
