// Random weights of every encoding for the kernel tests, built from random bytes
// (not from our encoders), and their values decoded in float64 straight from the
// format definitions (OCP Microscaling Formats (MX) v1.0 spec), independently of the kernels.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "base/tensor.h"
#include "formats/linear_weight.h"

namespace fp4serve::testing {

inline double ref_e4m3(uint8_t b) {
  const int exp = (b >> 3) & 0xF, mant = b & 7;
  const double mag = exp == 0 ? std::ldexp(mant, -9) : std::ldexp(1.0 + mant / 8.0, exp - 7);
  return (b & 0x80) ? -mag : mag;
}
inline double ref_e2m1(uint8_t code) {
  static const double mags[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
  return (code & 8) ? -mags[code & 7] : mags[code & 7];
}
inline double ref_e8m0(uint8_t e) { return std::ldexp(1.0, e - 127); }
inline double ref_bf16(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

struct TestWeight {
  LinearWeight weight;
  std::vector<double> values;  // [N, K] decoded in float64
};

inline uint8_t random_e4m3(std::mt19937& rng) {
  for (;;) {
    const uint8_t b = static_cast<uint8_t>(rng());
    if ((b & 0x7F) != 0x7F) return b;  // not NaN
  }
}

inline TestWeight make_test_weight(WeightEncoding enc, int64_t N, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  TestWeight t;
  LinearWeight& w = t.weight;
  w.encoding = enc;
  w.out_features = N;
  w.in_features = K;
  w.name = "test.weight";
  t.values.resize(static_cast<size_t>(N * K));
  switch (enc) {
    case WeightEncoding::kBF16:
    case WeightEncoding::kF16:
    case WeightEncoding::kF32: {
      const DType dt = enc == WeightEncoding::kBF16 ? DType::BF16 : enc == WeightEncoding::kF16 ? DType::F16 : DType::F32;
      w.weight = make_owned_tensor(dt, {N, K});
      for (int64_t i = 0; i < N * K; ++i) {
        const float v = normal(rng);
        if (dt == DType::F32) {
          reinterpret_cast<float*>(mutable_data(w.weight))[i] = v;
          t.values[i] = v;
        } else if (dt == DType::BF16) {
          uint32_t u;
          std::memcpy(&u, &v, 4);
          const uint16_t b = static_cast<uint16_t>(u >> 16);
          reinterpret_cast<uint16_t*>(mutable_data(w.weight))[i] = b;
          t.values[i] = ref_bf16(b);
        } else {
          // A random half with a moderate exponent: sign, exponent 10..20, any mantissa.
          const uint16_t h = static_cast<uint16_t>((rng() & 0x8000) | ((10 + rng() % 11) << 10) | (rng() & 0x3FF));
          reinterpret_cast<uint16_t*>(mutable_data(w.weight))[i] = h;
          const int e = (h >> 10) & 0x1F;
          t.values[i] = ((h & 0x8000) ? -1.0 : 1.0) * std::ldexp(1.0 + (h & 0x3FF) / 1024.0, e - 15);
        }
      }
      break;
    }
    case WeightEncoding::kFP8Block: {
      w.weight = make_owned_tensor(DType::F8_E4M3, {N, K});
      const int64_t nb = (N + 127) / 128, kb = (K + 127) / 128;
      w.scale = make_owned_tensor(DType::F8_E8M0, {nb, kb});
      auto* s = reinterpret_cast<uint8_t*>(mutable_data(w.scale));
      for (int64_t i = 0; i < nb * kb; ++i) s[i] = static_cast<uint8_t>(115 + rng() % 10);
      auto* q = reinterpret_cast<uint8_t*>(mutable_data(w.weight));
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k) {
          q[n * K + k] = random_e4m3(rng);
          t.values[n * K + k] = ref_e4m3(q[n * K + k]) * ref_e8m0(s[(n / 128) * kb + k / 128]);
        }
      break;
    }
    case WeightEncoding::kMXFP4:
    case WeightEncoding::kNVFP4: {
      const bool mx = enc == WeightEncoding::kMXFP4;
      const int64_t block = mx ? 32 : 16;
      w.weight = make_owned_tensor(mx ? DType::I8 : DType::U8, {N, K / 2});
      w.scale = make_owned_tensor(mx ? DType::F8_E8M0 : DType::F8_E4M3, {N, K / block});
      auto* s = reinterpret_cast<uint8_t*>(mutable_data(w.scale));
      for (int64_t i = 0; i < N * K / block; ++i)
        s[i] = mx ? static_cast<uint8_t>(118 + rng() % 8) : static_cast<uint8_t>(1 + rng() % 0x7E);  // positive E4M3
      auto* q = reinterpret_cast<uint8_t*>(mutable_data(w.weight));
      for (int64_t i = 0; i < N * K / 2; ++i) q[i] = static_cast<uint8_t>(rng());
      if (!mx) w.global_scale = 0.00123f;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k) {
          const uint8_t byte = q[n * K / 2 + k / 2];
          const uint8_t code = (k % 2 == 0) ? (byte & 0xF) : (byte >> 4);
          const uint8_t sb = s[n * (K / block) + k / block];
          t.values[n * K + k] = ref_e2m1(code) * (mx ? ref_e8m0(sb) : ref_e4m3(sb) * static_cast<double>(w.global_scale));
        }
      break;
    }
  }
  return t;
}

}  // namespace fp4serve::testing
