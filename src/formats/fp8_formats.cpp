// FP8 E4M3FN and E5M2, and the E8M0 scale format: what number_formats.h does not define inline.
#include <bit>
#include <cstdint>

#include "base/error.h"
#include "formats/number_formats.h"

namespace fp4serve {

float decode_e5m2(uint8_t code) { return decode_f16(static_cast<uint16_t>(code << 8)); }

uint8_t encode_e8m0_ceil(float x) {
  FP4SERVE_CHECK(x >= 0.0f, "E8M0 scale of a negative or NaN value ({})", x);
  FP4SERVE_CHECK(x <= 0x1p127f, "E8M0 cannot hold a scale of {} (largest is 2^127)", x);
  if (x <= 0x1p-127f) return 0;
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint32_t field = bits >> 23;
  if (field == 0) return 1;  // a denormal above 2^-127 rounds up to 2^-126
  // A power of two is its own ceiling; anything with mantissa bits needs the next exponent.
  return static_cast<uint8_t>(field + ((bits & 0x7FFFFFu) != 0 ? 1 : 0));
}

uint8_t encode_e8m0_torch(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint32_t field = (bits >> 23) & 0xFFu;
  if (field == 0xFF) return 0xFF;  // NaN and ±Inf
  // Round the significand to zero mantissa bits, ties to even: the kept bit is the implicit
  // leading one (1 for normals, 0 for denormals), the guard bit is mantissa bit 22.
  const bool guard = (bits & 0x400000u) != 0;
  const bool below_guard = (bits & 0x3FFFFFu) != 0;
  const bool kept_is_odd = field != 0;
  const bool round_up = guard && (below_guard || kept_is_odd);
  return static_cast<uint8_t>(round_up ? field + 1 : field);
}

}  // namespace fp4serve
