// Reference dequantization and validation of LinearWeight, against hand-built weights and
// hand-computed NVFP4 and MXFP4 rows.
#include "formats/weight_dequantization.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "format_references.h"
#include "formats/linear_weight.h"

namespace fp4serve {
namespace {

using ::testing::HasSubstr;

TensorView bytes_tensor(DType dtype, std::vector<int64_t> shape, const std::vector<uint8_t>& bytes) {
  TensorView t = make_owned_tensor(dtype, std::move(shape), "test");
  EXPECT_EQ(t.nbytes, bytes.size());
  std::memcpy(mutable_data(t), bytes.data(), bytes.size());
  return t;
}

template <typename T>
TensorView values_tensor(DType dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
  TensorView t = make_owned_tensor(dtype, std::move(shape), "test");
  EXPECT_EQ(t.nbytes, values.size() * sizeof(T));
  std::memcpy(mutable_data(t), values.data(), t.nbytes);
  return t;
}

// One NVFP4 row: the 16 packed bytes and two E4M3 block scales of one 32-value NVFP4 row.
const std::vector<uint8_t> kSpecNvfp4Row = {0x00, 0x19, 0xa2, 0x43, 0x4c, 0x80, 0x50, 0x6f,
                                            0x91, 0x32, 0x44, 0x5d, 0x65, 0x66, 0x7e, 0x77};
const std::vector<float> kSpecBlock0 = {0, 0, -0.25, 0.25, 0.5, -0.5, 0.75, 1.0, -1.0, 1.0, 0, -0.0, 0, 1.5, -3.0, 2.0};
const std::vector<float> kSpecBlock1 = {0.001395,  -0.001395, 0.00279,  0.004185, 0.00558,  0.00558,
                                        -0.008371, 0.008371,  0.008371, 0.011161, 0.011161, 0.011161,
                                        -0.011161, 0.016741,  0.016741, 0.016741};

LinearWeight spec_nvfp4_row() {
  LinearWeight w;
  w.encoding = WeightEncoding::kNVFP4;
  w.out_features = 1;
  w.in_features = 32;
  w.name = "spec.nvfp4";
  w.weight = bytes_tensor(DType::U8, {1, 16}, kSpecNvfp4Row);
  w.scale = bytes_tensor(DType::F8_E4M3, {1, 2}, {0x7E, 0x42});
  w.global_scale = std::bit_cast<float>(0x3A924925u);
  return w;
}

TEST(EncodingName, NamesRoundTrip) {
  for (WeightEncoding e : {WeightEncoding::kBF16, WeightEncoding::kF16, WeightEncoding::kF32, WeightEncoding::kFP8Block,
                           WeightEncoding::kMXFP4, WeightEncoding::kNVFP4}) {
    WeightEncoding parsed;
    ASSERT_TRUE(parse_encoding_name(encoding_name(e), &parsed)) << encoding_name(e);
    EXPECT_EQ(parsed, e);
  }
  EXPECT_EQ(encoding_name(WeightEncoding::kFP8Block), "fp8-block");
  EXPECT_EQ(encoding_name(WeightEncoding::kNVFP4), "nvfp4");
  WeightEncoding unused;
  EXPECT_FALSE(parse_encoding_name("int4", &unused));
}

TEST(Dequantize, Spec64Nvfp4Row) {
  const std::vector<float> out = dequantize_to_f32(spec_nvfp4_row());
  ASSERT_EQ(out.size(), 32u);
  for (int i = 0; i < 16; ++i) {
    // weight_scale_2 is 3/2688 rounded up, so 448 * weight_scale_2 is 0.5 * (1 + 4.5e-8) and a
    // few products round one ulp above the spec's rounded values.
    EXPECT_FLOAT_EQ(out[i], kSpecBlock0[i]) << i;
    EXPECT_EQ(std::signbit(out[i]), std::signbit(kSpecBlock0[i])) << i;
    EXPECT_NEAR(out[16 + i], kSpecBlock1[i], 1e-6) << 16 + i;
  }
  // Exactly: E2M1 * 2.5 * weight_scale_2, one rounding.
  EXPECT_EQ(out[29], static_cast<float>(6.0 * 2.5 * static_cast<double>(std::bit_cast<float>(0x3A924925u))));
}

TEST(Dequantize, Spec65Mxfp4Block) {
  LinearWeight w;
  w.encoding = WeightEncoding::kMXFP4;
  w.out_features = 1;
  w.in_features = 32;
  w.weight =
      bytes_tensor(DType::I8, {1, 16},
                   {0x00, 0x19, 0xa2, 0x43, 0x4c, 0x80, 0x50, 0x6f, 0x80, 0x00, 0x00, 0x08, 0x00, 0x00, 0x08, 0x00});
  w.scale = bytes_tensor(DType::F8_E8M0, {1, 1}, {0x7E});
  const std::vector<float> out = dequantize_to_f32(w);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(out[i], kSpecBlock0[i]) << i;
  for (int i = 16; i < 32; ++i) EXPECT_EQ(out[i], 0.0f) << i;
  EXPECT_TRUE(std::signbit(out[17]));  // -0.002 kept its sign
}

TEST(Dequantize, Fp8BlockWithPartialEdgeBlocks) {
  const int64_t n = 130, k = 200;  // 2 x 2 blocks, the last ones partial
  std::vector<uint8_t> codes(n * k);
  for (int64_t i = 0; i < n * k; ++i) codes[i] = static_cast<uint8_t>((i * 37 + 11) % 256);
  const std::vector<uint8_t> e8m0 = {0x7F, 0x75, 0x85, 0x00};
  const std::vector<float> f32 = {1.0f, 0.003f, 17.5f, 1e-30f};
  for (bool use_e8m0 : {true, false}) {
    LinearWeight w;
    w.encoding = WeightEncoding::kFP8Block;
    w.out_features = n;
    w.in_features = k;
    w.weight = bytes_tensor(DType::F8_E4M3, {n, k}, codes);
    w.scale = use_e8m0 ? bytes_tensor(DType::F8_E8M0, {2, 2}, e8m0) : values_tensor(DType::F32, {2, 2}, f32);
    const std::vector<float> out = dequantize_to_f32(w);
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t c = 0; c < k; ++c) {
        const int block = static_cast<int>((r / 128) * 2 + c / 128);
        const double scale = use_e8m0 ? testing::e8m0_reference(e8m0[block]) : f32[block];
        const double expected = testing::e4m3_reference(codes[r * k + c]) * scale;
        const float got = out[r * k + c];
        if (std::isnan(expected)) {
          ASSERT_TRUE(std::isnan(got)) << r << "," << c;
        } else {
          ASSERT_EQ(got, static_cast<float>(expected)) << r << "," << c;
        }
      }
    }
  }
}

TEST(Dequantize, Mxfp4AndNvfp4EveryNibbleInEveryPosition) {
  const int64_t n = 3, k = 64;
  std::vector<uint8_t> packed(n * k / 2);
  for (size_t i = 0; i < packed.size(); ++i) packed[i] = static_cast<uint8_t>(i * 7 + 3);
  LinearWeight mx;
  mx.encoding = WeightEncoding::kMXFP4;
  mx.out_features = n;
  mx.in_features = k;
  mx.weight = bytes_tensor(DType::U8, {n, k / 2}, packed);
  const std::vector<uint8_t> mx_scales = {0x7F, 0x01, 0x80, 0xFE, 0x7A, 0x00};
  mx.scale = bytes_tensor(DType::F8_E8M0, {n, 2}, mx_scales);
  LinearWeight nv = mx;
  nv.encoding = WeightEncoding::kNVFP4;
  const std::vector<uint8_t> nv_scales = {0x38, 0x01, 0x7E, 0x42, 0x08, 0x30, 0x3F, 0x40, 0x77, 0x00, 0x11, 0x66};
  nv.scale = bytes_tensor(DType::F8_E4M3, {n, 4}, nv_scales);
  nv.global_scale = 0.0123f;
  const std::vector<float> mx_out = dequantize_to_f32(mx), nv_out = dequantize_to_f32(nv);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < k; ++c) {
      const uint8_t byte = packed[r * k / 2 + c / 2];
      const double value = testing::kE2M1Table[c % 2 == 0 ? (byte & 0xF) : (byte >> 4)];
      ASSERT_EQ(mx_out[r * k + c], static_cast<float>(value * testing::e8m0_reference(mx_scales[r * 2 + c / 32])));
      const double nv_expected = value * testing::e4m3_reference(nv_scales[r * 4 + c / 16]) * double{nv.global_scale};
      ASSERT_EQ(nv_out[r * k + c], static_cast<float>(nv_expected)) << r << "," << c;
    }
  }
}

TEST(Dequantize, DenseEncodingsAndRowRanges) {
  const std::vector<float> values = {1.0f, -2.5f, 3.25f, 0.0f, -0.0f, 1e-3f};
  LinearWeight f32;
  f32.encoding = WeightEncoding::kF32;
  f32.out_features = 2;
  f32.in_features = 3;
  f32.weight = values_tensor(DType::F32, {2, 3}, values);
  EXPECT_EQ(dequantize_to_f32(f32), values);
  LinearWeight bf16 = f32;
  bf16.encoding = WeightEncoding::kBF16;
  bf16.weight = values_tensor<uint16_t>(DType::BF16, {2, 3}, {0x3F80, 0xC020, 0x4050, 0x0000, 0x8000, 0x3A83});
  LinearWeight f16 = f32;
  f16.encoding = WeightEncoding::kF16;
  f16.weight = values_tensor<uint16_t>(DType::F16, {2, 3}, {0x3C00, 0xC100, 0x4280, 0x0000, 0x8000, 0x1419});
  const std::vector<float> bf16_out = dequantize_to_f32(bf16), f16_out = dequantize_to_f32(f16);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(bf16_out[i], values[i]) << i;
    EXPECT_EQ(f16_out[i], values[i]) << i;
  }
  EXPECT_EQ(bf16_out[5], 0x1.06p-10f);  // 0x3A83: 1e-3 in bf16
  EXPECT_EQ(f16_out[5], 0x1.064p-10f);  // 0x1419: 1e-3 in f16
  std::vector<float> row(3);
  dequantize_rows(f32, 1, 1, row);
  EXPECT_EQ(row, std::vector<float>(values.begin() + 3, values.end()));
  std::vector<float> two_rows(6), too_small(2);
  EXPECT_THROW(dequantize_rows(f32, 1, 2, two_rows), Error);  // past the last row
  EXPECT_THROW(dequantize_rows(f32, 0, 1, too_small), Error);
}

std::string error_of(const LinearWeight& w) {
  try {
    validate_linear_weight(w);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Validate, AcceptsWellFormedWeights) { EXPECT_EQ(error_of(spec_nvfp4_row()), ""); }

TEST(Validate, RejectsMismatchesNamingTheWeight) {
  LinearWeight bad_dtype = spec_nvfp4_row();
  bad_dtype.scale.dtype = DType::F8_E8M0;
  EXPECT_THAT(error_of(bad_dtype), HasSubstr("spec.nvfp4"));
  EXPECT_THAT(error_of(bad_dtype), HasSubstr("F8_E8M0"));

  LinearWeight bad_shape = spec_nvfp4_row();
  bad_shape.in_features = 64;
  EXPECT_THAT(error_of(bad_shape), HasSubstr("[1, 16]"));

  LinearWeight not_a_multiple = spec_nvfp4_row();
  not_a_multiple.in_features = 24;
  EXPECT_THAT(error_of(not_a_multiple), HasSubstr("multiple of the block size 16"));

  LinearWeight mx = spec_nvfp4_row();
  mx.encoding = WeightEncoding::kMXFP4;
  mx.in_features = 48;
  EXPECT_THAT(error_of(mx), HasSubstr("multiple of the block size 32"));

  LinearWeight nan_global = spec_nvfp4_row();
  nan_global.global_scale = std::nanf("");
  EXPECT_THAT(error_of(nan_global), HasSubstr("weight_scale_2"));

  LinearWeight bytes = spec_nvfp4_row();
  bytes.weight.nbytes = 15;
  EXPECT_THAT(error_of(bytes), HasSubstr("holds 15 bytes"));

  LinearWeight dense;
  dense.encoding = WeightEncoding::kBF16;
  dense.out_features = 1;
  dense.in_features = 2;
  dense.name = "dense";
  dense.weight = values_tensor<uint16_t>(DType::BF16, {1, 2}, {0, 0});
  EXPECT_EQ(error_of(dense), "");
  dense.scale = bytes_tensor(DType::F8_E8M0, {1}, {0x7F});
  EXPECT_THAT(error_of(dense), HasSubstr("scale"));

  LinearWeight empty;
  empty.name = "empty";
  EXPECT_THAT(error_of(empty), HasSubstr("empty"));
  EXPECT_THROW(dequantize_to_f32(bad_shape), Error);
}

}  // namespace
}  // namespace fp4serve
