// Quantizers: hand-computed NVFP4 and MXFP4 rows bit for bit, every scale and code of random matrices
// against naive float64 re-derivations of each producer's rule, error bounds of
// dequant(quantize(w)), and clear errors for bad input.
#include "formats/weight_quantization.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "base/error.h"
#include "format_references.h"
#include "formats/number_formats.h"
#include "formats/weight_dequantization.h"
#include "test_matrices.h"

namespace fp4serve {
namespace {

using ::testing::HasSubstr;
using testing::nearest_code;

const std::vector<float> kSpecRow = {0,      0.1,   -0.2,  0.3,  0.45,  -0.6,  0.75,   0.9,   -1.05, 1.2,   0.01,
                                     -0.02,  0.05,  1.5,   -3.0, 2.25,  0.001, -0.002, 0.003, 0.004, 0.005, 0.006,
                                     -0.007, 0.008, 0.009, 0.01, 0.011, 0.012, -0.013, 0.014, 0.015, 0.016};

std::vector<uint8_t> bytes_of(const TensorView& t) {
  const auto* p = reinterpret_cast<const uint8_t*>(t.data);
  return std::vector<uint8_t>(p, p + t.nbytes);
}

double block_amax(const std::vector<float>& w, int64_t k, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  double amax = 0;
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(double{w[r * k + c]}));
  }
  return amax;
}

double ceil_pow2(double x) {
  int e;
  const double f = std::frexp(x, &e);
  return f == 0.5 ? x : std::ldexp(1.0, e);
}

// Signed E2M1 code by brute force: nearest (ties to even), saturating, sign from the sign bit.
int e2m1_reference_code(double x) {
  const int magnitude = std::min(nearest_code(std::fabs(x), testing::e2m1_magnitudes_with_overflow()), 7);
  return (std::signbit(x) ? 8 : 0) | magnitude;
}

int e4m3_reference_magnitude(double x) {
  return std::min(nearest_code(std::fabs(x), testing::e4m3_magnitudes_with_overflow()), 0x7E);
}

TEST(QuantizeNvfp4, Spec64RowBitForBit) {
  const LinearWeight w = quantize_nvfp4(kSpecRow, 1, 32, {}, "spec.row");
  EXPECT_EQ(std::bit_cast<uint32_t>(w.global_scale), 0x3A924925u);
  EXPECT_EQ(bytes_of(w.scale), (std::vector<uint8_t>{0x7E, 0x42}));
  EXPECT_EQ(bytes_of(w.weight), (std::vector<uint8_t>{0x00, 0x19, 0xa2, 0x43, 0x4c, 0x80, 0x50, 0x6f, 0x91, 0x32, 0x44,
                                                      0x5d, 0x65, 0x66, 0x7e, 0x77}));
  EXPECT_EQ(w.weight.dtype, DType::U8);
  EXPECT_EQ(w.scale.dtype, DType::F8_E4M3);
  EXPECT_EQ(w.scale.shape, (std::vector<int64_t>{1, 2}));
}

TEST(QuantizeMxfp4, Spec65BlockBitForBit) {
  const LinearWeight w = quantize_mxfp4(kSpecRow, 1, 32, "spec.row");
  EXPECT_EQ(bytes_of(w.scale), (std::vector<uint8_t>{0x7E}));
  EXPECT_EQ(bytes_of(w.weight), (std::vector<uint8_t>{0x00, 0x19, 0xa2, 0x43, 0x4c, 0x80, 0x50, 0x6f, 0x80, 0x00, 0x00,
                                                      0x08, 0x00, 0x00, 0x08, 0x00}));
  EXPECT_EQ(w.weight.dtype, DType::I8);
  EXPECT_EQ(w.scale.dtype, DType::F8_E8M0);
}

TEST(QuantizeFp8Block, E8M0ScalesAndCodesMatchTheRuleOnPartialBlocks) {
  const int64_t n = 130, k = 300;
  const std::vector<float> w = testing::random_weights(n, k, 11);
  const LinearWeight q = quantize_fp8_block(w, n, k, Fp8ScaleFormat::kE8M0, "fp8.e8m0");
  ASSERT_EQ(q.scale.shape, (std::vector<int64_t>{2, 3}));
  const std::vector<uint8_t> scales = bytes_of(q.scale), codes = bytes_of(q.weight);
  const std::vector<float> deq = dequantize_to_f32(q);
  for (int64_t rb = 0; rb < 2; ++rb) {
    for (int64_t cb = 0; cb < 3; ++cb) {
      const int64_t r0 = rb * 128, r1 = std::min(n, r0 + 128), c0 = cb * 128, c1 = std::min(k, c0 + 128);
      const double amax = block_amax(w, k, r0, r1, c0, c1);
      const double scale = ceil_pow2(std::max(amax, double{1e-4f}) / 448.0);
      ASSERT_EQ(testing::e8m0_reference(scales[rb * 3 + cb]), scale) << rb << "," << cb;
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) {
          const double x = w[r * k + c] / scale;  // exact: the scale is a power of two
          const int expected = (std::signbit(x) ? 0x80 : 0) | e4m3_reference_magnitude(x);
          ASSERT_EQ(codes[r * k + c], expected) << r << "," << c << ": " << w[r * k + c];
          // Error bound: half an E4M3 step, relative 2^-4 (normal) or 2^-10 * scale (subnormal).
          ASSERT_LE(std::fabs(deq[r * k + c] - w[r * k + c]),
                    std::max(std::fabs(double{w[r * k + c]}) / 16, scale / 1024));
        }
      }
    }
  }
}

TEST(QuantizeFp8Block, F32ScalesAreAmaxOver448) {
  const int64_t n = 129, k = 129;
  const std::vector<float> w = testing::random_weights(n, k, 12);
  const LinearWeight q = quantize_fp8_block(w, n, k, Fp8ScaleFormat::kF32, "fp8.f32");
  ASSERT_EQ(q.scale.dtype, DType::F32);
  const float* scales = q.scale.as<float>();
  const std::vector<uint8_t> codes = bytes_of(q.weight);
  const std::vector<float> deq = dequantize_to_f32(q);
  for (int64_t rb = 0; rb < 2; ++rb) {
    for (int64_t cb = 0; cb < 2; ++cb) {
      const int64_t r0 = rb * 128, r1 = std::min(n, r0 + 128), c0 = cb * 128, c1 = std::min(k, c0 + 128);
      const double amax = block_amax(w, k, r0, r1, c0, c1);
      // float64 quotient rounded to float = the correctly rounded fp32 division.
      const float scale = static_cast<float>(std::max(amax, double{1e-4f}) / 448.0);
      ASSERT_EQ(scales[rb * 2 + cb], scale);
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) {
          const double x = static_cast<float>(double{w[r * k + c]} / scale);
          const int expected = (std::signbit(x) ? 0x80 : 0) | e4m3_reference_magnitude(x);
          ASSERT_EQ(codes[r * k + c], expected) << r << "," << c;
          ASSERT_LE(std::fabs(deq[r * k + c] - w[r * k + c]),
                    std::max(std::fabs(w[r * k + c]) / 15.9, double{scale} / 1000))
              << r << "," << c;
        }
      }
    }
  }
}

TEST(QuantizeMxfp4, ScalesAndCodesMatchDeepSeeksRule) {
  const int64_t n = 37, k = 96;
  const std::vector<float> w = testing::random_weights(n, k, 13);
  const LinearWeight q = quantize_mxfp4(w, n, k, "experts.0.w1");
  const std::vector<uint8_t> scales = bytes_of(q.scale), packed = bytes_of(q.weight);
  const std::vector<float> deq = dequantize_to_f32(q);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t b = 0; b < k / 32; ++b) {
      const double amax = block_amax(w, k, r, r + 1, b * 32, b * 32 + 32);
      const double scale = ceil_pow2(std::max(amax, 6 * std::ldexp(1.0, -126)) / 6);
      ASSERT_EQ(testing::e8m0_reference(scales[r * 3 + b]), scale) << r << "," << b;
      ASSERT_GE(scales[r * 3 + b], 1);
      for (int64_t c = b * 32; c < b * 32 + 32; ++c) {
        const uint8_t byte = packed[r * k / 2 + c / 2];
        const int code = c % 2 == 0 ? (byte & 0xF) : (byte >> 4);
        ASSERT_EQ(code, e2m1_reference_code(w[r * k + c] / scale)) << r << "," << c;
        const double x = std::fabs(double{w[r * k + c]});
        ASSERT_LE(std::fabs(deq[r * k + c] - w[r * k + c]), std::max(scale / 4, x / 4)) << r << "," << c;
      }
    }
  }
}

// ModelOpt's NVFP4 rule re-derived in float64, rounding to fp32 where torch computes in fp32
// (an fp32 op equals the float64 op rounded to fp32 for one +, *, / of fp32 operands).
struct Nvfp4Reference {
  float global_scale;
  std::vector<uint8_t> scales;
  std::vector<int> codes;
};

Nvfp4Reference nvfp4_reference(const std::vector<float>& w, int64_t n, int64_t k, double global_amax) {
  Nvfp4Reference ref;
  ref.global_scale = static_cast<float>(global_amax / 2688.0);
  const float six_global = static_cast<float>(6.0 * ref.global_scale);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t b = 0; b < k / 16; ++b) {
      float s = static_cast<float>(block_amax(w, k, r, r + 1, b * 16, b * 16 + 16) / six_global);
      if (s == 0) s = 1;
      s = std::clamp(s, 0x1p-9f, 448.0f);
      const int sf = e4m3_reference_magnitude(s);
      ref.scales.push_back(static_cast<uint8_t>(sf));
      const float divisor = static_cast<float>(testing::e4m3_reference(sf) * ref.global_scale);
      for (int64_t c = b * 16; c < b * 16 + 16; ++c) {
        const float q = static_cast<float>(double{w[r * k + c]} / divisor);
        ref.codes.push_back(q == 0 ? 0 : e2m1_reference_code(q));
      }
    }
  }
  return ref;
}

void expect_nvfp4_matches(const LinearWeight& q, const std::vector<float>& w, int64_t n, int64_t k,
                          double global_amax) {
  const Nvfp4Reference ref = nvfp4_reference(w, n, k, global_amax);
  ASSERT_EQ(q.global_scale, ref.global_scale);
  ASSERT_EQ(bytes_of(q.scale), ref.scales);
  const std::vector<uint8_t> packed = bytes_of(q.weight);
  const std::vector<float> deq = dequantize_to_f32(q);
  for (int64_t i = 0; i < n * k; ++i) {
    const int code = i % 2 == 0 ? (packed[i / 2] & 0xF) : (packed[i / 2] >> 4);
    ASSERT_EQ(code, ref.codes[i]) << i / k << "," << i % k << ": " << w[i];
    // Bound: the element grid step (<= |x| / 4 or block scale / 4) plus the block scale's own
    // E4M3 rounding (<= amax_b / 16, where saturation can cost it), plus tiny-block clamping.
    const double block = block_amax(w, k, i / k, i / k + 1, (i % k) / 16 * 16, (i % k) / 16 * 16 + 16);
    const double step = testing::e4m3_reference(ref.scales[i / 16]) * q.global_scale;
    const double bound = std::max(std::fabs(double{w[i]}) / 4, step / 4) + block / 16 + 1e-30;
    ASSERT_LE(std::fabs(deq[i] - w[i]), bound) << i / k << "," << i % k;
  }
}

TEST(QuantizeNvfp4, ScalesAndCodesMatchModelOptsRule) {
  const int64_t n = 37, k = 96;
  const std::vector<float> w = testing::random_weights(n, k, 14);
  const LinearWeight q = quantize_nvfp4(w, n, k, {}, "experts.0.w1");
  expect_nvfp4_matches(q, w, n, k, block_amax(w, k, 0, n, 0, k));
}

TEST(QuantizeNvfp4, SharedGlobalAmaxForAGateUpPair) {
  const int64_t n = 16, k = 64;
  const std::vector<float> w1 = testing::random_weights(n, k, 15);
  std::vector<float> w3 = testing::random_weights(n, k, 16);
  for (float& v : w3) v *= 0.125f;
  const float shared = std::max(absolute_max(w1, "w1"), absolute_max(w3, "w3"));
  Nvfp4Options options;
  options.global_amax = shared;
  options.input_scale = 0.25f;
  const LinearWeight q1 = quantize_nvfp4(w1, n, k, options, "w1");
  const LinearWeight q3 = quantize_nvfp4(w3, n, k, options, "w3");
  EXPECT_EQ(q1.global_scale, q3.global_scale);
  EXPECT_EQ(q3.input_scale, 0.25f);
  expect_nvfp4_matches(q3, w3, n, k, shared);
  const LinearWeight own = quantize_nvfp4(w3, n, k, {}, "w3");
  EXPECT_NE(own.global_scale, q3.global_scale);
}

TEST(QuantizeNvfp4, MinusZeroGivesPlusZeroAsModelOpt) {
  std::vector<float> w(16, -0.0f);
  w[0] = 1.0f;
  w[1] = -1e-6f;  // rounds to zero but is negative: keeps the sign
  const LinearWeight q = quantize_nvfp4(w, 1, 16, {}, "signs");
  const std::vector<uint8_t> packed = bytes_of(q.weight);
  EXPECT_EQ(packed[0], 0x87);  // 6.0 and -0
  for (size_t j = 1; j < packed.size(); ++j) EXPECT_EQ(packed[j], 0x00) << j;
}

TEST(QuantizeNvfp4, AllZeroTensor) {
  const std::vector<float> w(2 * 32, 0.0f);
  const LinearWeight q = quantize_nvfp4(w, 2, 32, {}, "zeros");
  EXPECT_EQ(q.global_scale, 0.0f);
  EXPECT_EQ(bytes_of(q.scale), std::vector<uint8_t>(4, 0x38));
  EXPECT_EQ(bytes_of(q.weight), std::vector<uint8_t>(32, 0x00));
  EXPECT_EQ(dequantize_to_f32(q), w);
}

TEST(QuantizeWeight, EveryEncodingGivesAValidWeightThatDecodesClose) {
  const int64_t n = 20, k = 128;
  const std::vector<float> w = testing::random_weights(n, k, 17);
  for (WeightEncoding e : {WeightEncoding::kBF16, WeightEncoding::kF16, WeightEncoding::kF32, WeightEncoding::kFP8Block,
                           WeightEncoding::kMXFP4, WeightEncoding::kNVFP4}) {
    const LinearWeight q = quantize_weight(w, n, k, e, "layers.0.attn.wq_a");
    EXPECT_EQ(q.name, "layers.0.attn.wq_a");
    EXPECT_EQ(q.encoding, e);
    EXPECT_NO_THROW(validate_linear_weight(q));
    const std::vector<float> deq = dequantize_to_f32(q);
    // Relative RMS error over the rows that are not tiny: a loose check of the whole path.
    double err = 0, ref = 0;
    for (int64_t i = 2 * k; i < n * k; ++i) {
      err += (deq[i] - w[i]) * double(deq[i] - w[i]);
      ref += double(w[i]) * w[i];
    }
    const double limit = e == WeightEncoding::kF32                                 ? 0
                         : e == WeightEncoding::kBF16 || e == WeightEncoding::kF16 ? 1e-2
                                                                                   : 0.2;
    EXPECT_LE(std::sqrt(err / ref), limit) << encoding_name(e);
  }
}

TEST(MakeDenseWeight, RoundsToNearestEven) {
  const std::vector<float> w = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 65520.0f, -0.0f};
  const LinearWeight bf16 = make_dense_weight(w, 1, 4, WeightEncoding::kBF16, "b");
  const LinearWeight f16 = make_dense_weight(w, 1, 4, WeightEncoding::kF16, "h");
  EXPECT_EQ(dequantize_to_f32(bf16), (std::vector<float>{1.0f, 1.0f + 4 * 0x1p-8f, 65536.0f, -0.0f}));
  const std::vector<float> h = dequantize_to_f32(f16);
  EXPECT_EQ(h[0], w[0]);
  EXPECT_TRUE(std::isinf(h[2]));
  EXPECT_THROW(make_dense_weight(w, 1, 4, WeightEncoding::kNVFP4, "x"), Error);
}

std::string error_of(auto&& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Quantizers, BadInputGivesErrorsNamingTheWeight) {
  std::vector<float> w(4 * 64, 0.5f);
  w[70] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THAT(error_of([&] { quantize_fp8_block(w, 4, 64, Fp8ScaleFormat::kE8M0, "wq_b"); }),
              HasSubstr("wq_b: element [1, 6] is nan"));
  EXPECT_THAT(error_of([&] { quantize_mxfp4(w, 4, 64, "w2"); }), HasSubstr("w2"));
  w[70] = std::numeric_limits<float>::infinity();
  EXPECT_THAT(error_of([&] { quantize_nvfp4(w, 4, 64, {}, "w3"); }), HasSubstr("w3: element [1, 6] is inf"));
  w[70] = 0.5f;
  EXPECT_THAT(error_of([&] { quantize_mxfp4(w, 4, 64, "w2"); }), ::testing::IsEmpty());
  EXPECT_THAT(error_of([&] { quantize_mxfp4(std::span(w).first(4 * 48), 4, 48, "w2"); }),
              HasSubstr("multiple of 32, got 48"));
  EXPECT_THAT(error_of([&] { quantize_nvfp4(std::span(w).first(4 * 24), 4, 24, {}, "w1"); }),
              HasSubstr("multiple of 16, got 24"));
  EXPECT_THAT(error_of([&] { quantize_fp8_block(w, 4, 63, Fp8ScaleFormat::kF32, "wo_a"); }),
              HasSubstr("256 values given for a 4 x 63 weight"));
  Nvfp4Options negative;
  negative.input_scale = -1.0f;
  EXPECT_THAT(error_of([&] { quantize_nvfp4(w, 4, 64, negative, "w1"); }), HasSubstr("input_scale"));
  Nvfp4Options nan_amax;
  nan_amax.global_amax = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THAT(error_of([&] { quantize_nvfp4(w, 4, 64, nan_amax, "w1"); }), HasSubstr("global amax"));
  Nvfp4Options zero_amax;
  zero_amax.global_amax = 0.0f;
  EXPECT_THAT(error_of([&] { quantize_nvfp4(w, 4, 64, zero_amax, "w1"); }), HasSubstr("too small for NVFP4"));
}

}  // namespace
}  // namespace fp4serve
