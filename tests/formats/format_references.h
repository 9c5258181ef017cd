// Independent references for the format tests, written from the bit-level definitions of
// the OCP Microscaling Formats (MX) v1.0 spec and IEEE 754 in float64, by a different method than src/formats
// (value formulas and brute-force nearest search instead of bit manipulation).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace fp4serve::testing {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// E4M3: s eeee mmm, bias 7; e = 0 subnormal m * 2^-9; S.1111.111 is NaN; no Inf.
inline double e4m3_reference(int code) {
  const int s = code >> 7, e = (code >> 3) & 0xF, m = code & 0x7;
  if (e == 0xF && m == 0x7) return kNaN;
  const double magnitude = e == 0 ? m * std::ldexp(1.0, -9) : (1.0 + m / 8.0) * std::ldexp(1.0, e - 7);
  return s ? -magnitude : magnitude;
}

// IEEE-style E5M2: bias 15, subnormal m * 2^-16, e = 31: Inf (m = 0) or NaN.
inline double e5m2_reference(int code) {
  const int s = code >> 7, e = (code >> 2) & 0x1F, m = code & 0x3;
  double magnitude;
  if (e == 0x1F) {
    magnitude = m == 0 ? std::numeric_limits<double>::infinity() : kNaN;
  } else {
    magnitude = e == 0 ? m * std::ldexp(1.0, -16) : (1.0 + m / 4.0) * std::ldexp(1.0, e - 15);
  }
  return s ? -magnitude : magnitude;
}

// E8M0: 2^(e - 127), 0xFF NaN.
inline double e8m0_reference(int code) { return code == 0xFF ? kNaN : std::ldexp(1.0, code - 127); }

// E2M1's magnitudes, written out.
inline constexpr double kE2M1Table[16] = {0.0,  0.5,  1.0,  1.5,  2.0,  3.0,  4.0,  6.0,
                                          -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0};

// Brute-force nearest magnitude code, ties to the even code. `magnitudes[c]` is the value of
// magnitude code c, increasing with c, and should end with one "virtual" code past the largest
// finite value (the format's pattern continued), so that a result equal to
// magnitudes.size() - 1 means "overflows".
inline int nearest_code(double magnitude, const std::vector<double>& magnitudes) {
  // At and past the last value it is the nearest; checked first because far above it the
  // float64 distances below would round to ties.
  if (magnitude >= magnitudes.back()) return static_cast<int>(magnitudes.size()) - 1;
  int best = 0;
  double best_distance = std::fabs(magnitude - magnitudes[0]);
  for (int c = 1; c < static_cast<int>(magnitudes.size()); ++c) {
    const double distance = std::fabs(magnitude - magnitudes[c]);
    if (distance < best_distance || (distance == best_distance && c % 2 == 0)) {
      best = c;
      best_distance = distance;
    }
  }
  return best;
}

// E4M3 magnitudes 0x00..0x7E plus the virtual 0x7F = 480.
inline std::vector<double> e4m3_magnitudes_with_overflow() {
  std::vector<double> m;
  for (int c = 0; c < 0x7F; ++c) m.push_back(e4m3_reference(c));
  m.push_back(1.875 * 256.0);
  return m;
}

// E2M1 magnitudes 0..7 plus the virtual 8 = 8.0.
inline std::vector<double> e2m1_magnitudes_with_overflow() {
  std::vector<double> m(kE2M1Table, kE2M1Table + 8);
  m.push_back(8.0);
  return m;
}

// A deterministic spread of float32 values: every `stride`-th bit pattern across all 2^32
// (both signs, denormals, Inf, NaN) plus `random_count` uniform random patterns.
inline std::vector<float> float_sample(uint32_t stride, int random_count, uint32_t seed) {
  std::vector<float> out;
  for (uint64_t bits = 0; bits <= 0xFFFFFFFFull; bits += stride) out.push_back(std::bit_cast<float>(uint32_t(bits)));
  std::mt19937 rng(seed);
  for (int i = 0; i < random_count; ++i) out.push_back(std::bit_cast<float>(static_cast<uint32_t>(rng())));
  return out;
}

// Floats one ulp below and above v (toward -Inf / +Inf).
inline float ulp_below(float v) { return std::nextafter(v, -std::numeric_limits<float>::infinity()); }
inline float ulp_above(float v) { return std::nextafter(v, std::numeric_limits<float>::infinity()); }

}  // namespace fp4serve::testing
