#include "backend/cpu/numeric_formats.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace fp4serve::cpu {
namespace {

float decode_e4m3(unsigned b) {
  const unsigned exp = (b >> 3) & 0xF, mant = b & 0x7;
  if (exp == 0xF && mant == 0x7) return std::numeric_limits<float>::quiet_NaN();
  const float mag = exp == 0 ? std::ldexp(static_cast<float>(mant), -9)  // subnormal: m * 2^-9
                             : std::ldexp(1.0f + static_cast<float>(mant) / 8.0f, static_cast<int>(exp) - 7);
  return (b & 0x80) ? -mag : mag;
}

std::array<float, 256> make_e4m3_table() {
  std::array<float, 256> t{};
  for (unsigned b = 0; b < 256; ++b) t[b] = decode_e4m3(b);
  return t;
}

}  // namespace

const float* e4m3_table() {
  static const std::array<float, 256> table = make_e4m3_table();
  return table.data();
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  if (exp == 0) {
    const float mag = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -mag : mag;
  }
  if (exp == 0x1F) return bits_to_float(sign | 0x7F800000u | (mant << 13));
  return bits_to_float(sign | ((exp + 112) << 23) | (mant << 13));
}

float round_to_e4m3(float x) {
  // Keep 3 mantissa bits, rounding to nearest even on the bits; below 2^-6 the spacing is
  // the subnormal 2^-9, where adding 1.5 * 2^23 to x * 2^9 rounds to an integer (RNE).
  const uint32_t u = float_to_bits(x), sign = u & 0x80000000u, mag = u & 0x7FFFFFFFu;
  if (mag >= 0x7F800000u) return x;  // Inf / NaN pass through (callers clamp first)
  if (mag < 0x3C800000u) {           // |x| < 2^-6
    const float a = bits_to_float(mag) * 512.0f;
    const float r = (a + 12582912.0f) - 12582912.0f;
    return bits_to_float(float_to_bits(r * (1.0f / 512.0f)) | sign);
  }
  const uint32_t rounded = (mag + 0x7FFFFu + ((mag >> 20) & 1u)) & ~0xFFFFFu;
  return bits_to_float(rounded | sign);
}

float round_to_e2m1(float x) {
  const float a = std::fabs(x);
  // Boundaries between consecutive E2M1 magnitudes; at a tie the even code wins
  // (0.25->0, 0.75->1, 1.25->1, 1.75->2, 2.5->2, 3.5->4, 5->4).
  int code = (a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f) + (a > 2.5f) + (a >= 3.5f) + (a > 5.0f);
  return std::signbit(x) ? -kE2M1Values[code] : kE2M1Values[code];
}

}  // namespace fp4serve::cpu
