// FP4 E2M1: bit 3 sign, bits 2..0 index eight magnitudes.
#include <cstdint>

#include "formats/minifloat_rounding.h"
#include "formats/number_formats.h"

namespace fp4serve {
namespace {

constexpr uint8_t kE2M1MaxMagnitude = 0x7;  // 6.0

}  // namespace

uint8_t encode_e2m1(float x) {
  const uint32_t magnitude = minifloat::magnitude_bits(x);
  if (magnitude > 0x7F800000u) return kE2M1MaxMagnitude;  // NaN -> +6, as NVIDIA's satfinite cvt
  const uint8_t sign = minifloat::sign_bit(x) ? 0x8 : 0x0;
  if (magnitude == 0x7F800000u) return sign | kE2M1MaxMagnitude;
  // E2M1: 1 mantissa bit, smallest normal exponent 0 (1.0), subnormal step 0.5.
  const uint32_t code = minifloat::round_magnitude(magnitude, 1, 0);
  return static_cast<uint8_t>(sign | (code > kE2M1MaxMagnitude ? kE2M1MaxMagnitude : code));
}

}  // namespace fp4serve
