// Cross-check against outside implementations, recorded on an H100 by
// tools/torch_cast_fixture.py (PyTorch 2.11 casts on CPU and CUDA; NVIDIA's cuda_fp8.h /
// cuda_fp4.h conversions run on the GPU and on the host; ml_dtypes 0.6). PyTorch 2.11 cannot
// cast float to float4_e2m1fn_x2 ("copy_kernel not implemented"), so E2M1 is checked against
// NVIDIA's conversion and ml_dtypes. Deliberate differences are asserted, not skipped:
//  * E4M3 of a negative NaN: PyTorch keeps the sign (0xFF), NVIDIA's non-saturating
//    conversion gives 0x7F; encode_e4m3(kToNaN) follows PyTorch.
//  * NaN to BF16/F16: only NaN-ness is compared (PyTorch CPU and CUDA produce different NaN
//    patterns from each other).
//  * E2M1 of NaN: NVIDIA gives +6 (0x7), ml_dtypes gives ±0; encode_e2m1 follows NVIDIA.
//  * float -> E8M0: PyTorch's cast rounds (encode_e8m0_torch reproduces it); the scale rule
//    DeepSeek uses is ceil (encode_e8m0_ceil), which is never below it.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <string>
#include <vector>

#include "formats/number_formats.h"
#include "safetensors_fixture.h"

namespace fp4serve {
namespace {

using testing::SafetensorsFixture;

const SafetensorsFixture& fixture() {
  static const SafetensorsFixture f(std::string(FP4SERVE_SOURCE_DIR) +
                                    "/tests/formats/fixtures/torch_casts.safetensors");
  return f;
}

std::vector<float> inputs() {
  std::vector<float> out;
  for (int32_t bits : fixture().read<int32_t>("input_bits")) out.push_back(std::bit_cast<float>(bits));
  return out;
}

bool same_float(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
}

TEST(TorchFixture, RecordsItsProvenance) {
  const std::string report = fixture().metadata("report");
  EXPECT_NE(report.find("2.11"), std::string::npos) << report;
  EXPECT_NE(report.find("H100"), std::string::npos) << report;
  EXPECT_GT(inputs().size(), 10000u);
}

TEST(TorchFixture, E4M3MatchesPyTorchOnCpuAndCuda) {
  const auto x = inputs();
  const auto cuda = fixture().read<uint8_t>("torch_cuda_e4m3fn");
  const auto cpu = fixture().read<uint8_t>("torch_cpu_e4m3fn");
  ASSERT_EQ(cuda.size(), x.size());
  EXPECT_EQ(cuda, cpu);
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(encode_e4m3(x[i], E4M3Overflow::kToNaN), cuda[i]) << i << ": " << x[i];
  }
}

TEST(TorchFixture, E4M3SaturatingMatchesNvidiaSatfinite) {
  const auto x = inputs();
  const auto device = fixture().read<uint8_t>("nvidia_device_e4m3_satfinite");
  EXPECT_EQ(device, fixture().read<uint8_t>("nvidia_host_e4m3_satfinite"));
  ASSERT_EQ(device.size(), x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(encode_e4m3(x[i], E4M3Overflow::kSaturate), device[i]) << i << ": " << x[i];
  }
}

TEST(TorchFixture, NvidiaNonSaturatingDiffersFromPyTorchOnlyInTheSignOfNaN) {
  const auto x = inputs();
  const auto nosat = fixture().read<uint8_t>("nvidia_device_e4m3_nosat");
  int negative_nans = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const uint8_t ours = encode_e4m3(x[i], E4M3Overflow::kToNaN);
    if (std::isnan(x[i]) && std::signbit(x[i])) {
      EXPECT_EQ(ours, 0xFF);
      EXPECT_EQ(nosat[i], 0x7F);
      ++negative_nans;
    } else {
      ASSERT_EQ(ours, nosat[i]) << i << ": " << x[i];
    }
  }
  EXPECT_GT(negative_nans, 0);
}

TEST(TorchFixture, E8M0CastRuleMatchesPyTorch) {
  const auto x = inputs();
  const auto cuda = fixture().read<uint8_t>("torch_cuda_e8m0fnu");
  EXPECT_EQ(cuda, fixture().read<uint8_t>("torch_cpu_e8m0fnu"));
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(encode_e8m0_torch(x[i]), cuda[i]) << i << ": " << x[i];
}

TEST(TorchFixture, E8M0CeilIsNeverBelowPyTorchsCastAndEqualOnPowersOfTwo) {
  const auto x = inputs();
  const auto cuda = fixture().read<uint8_t>("torch_cuda_e8m0fnu");
  int differ = 0, compared = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!(x[i] > 0x1p-126f && x[i] <= 0x1p127f)) continue;  // normal positive range of both rules
    const uint8_t ceil = encode_e8m0_ceil(x[i]);
    ASSERT_GE(ceil, cuda[i]) << x[i];
    ASSERT_LE(ceil, cuda[i] + 1) << x[i];
    if ((std::bit_cast<uint32_t>(x[i]) & 0x7FFFFF) == 0) {
      ASSERT_EQ(ceil, cuda[i]) << x[i];
    }
    differ += ceil != cuda[i];
    ++compared;
  }
  EXPECT_GT(differ, 100);
  EXPECT_GT(compared, 1000);
}

TEST(TorchFixture, BF16AndF16MatchPyTorch) {
  const auto x = inputs();
  for (const char* device : {"cpu", "cuda"}) {
    const auto bf16 = fixture().read<uint16_t>(std::string("torch_") + device + "_bf16");
    const auto f16 = fixture().read<uint16_t>(std::string("torch_") + device + "_f16");
    for (size_t i = 0; i < x.size(); ++i) {
      if (std::isnan(x[i])) {
        ASSERT_TRUE(std::isnan(decode_bf16(bf16[i])) && std::isnan(decode_bf16(encode_bf16(x[i]))));
        ASSERT_TRUE(std::isnan(decode_f16(f16[i])) && std::isnan(decode_f16(encode_f16(x[i]))));
        continue;
      }
      ASSERT_EQ(encode_bf16(x[i]), bf16[i]) << device << " " << i << ": " << x[i];
      ASSERT_EQ(encode_f16(x[i]), f16[i]) << device << " " << i << ": " << x[i];
    }
  }
}

TEST(TorchFixture, E2M1PairsMatchNvidiaConversion) {
  const auto x = inputs();
  const auto device = fixture().read<uint8_t>("nvidia_device_e2m1x2");
  EXPECT_EQ(device, fixture().read<uint8_t>("nvidia_host_e2m1x2"));
  ASSERT_EQ(device.size() * 2, x.size());
  for (size_t j = 0; j < device.size(); ++j) {
    ASSERT_EQ(pack_e2m1(encode_e2m1(x[2 * j]), encode_e2m1(x[2 * j + 1])), device[j])
        << j << ": " << x[2 * j] << ", " << x[2 * j + 1];
  }
}

TEST(TorchFixture, E2M1MatchesMlDtypesExceptForNaN) {
  const auto x = inputs();
  const auto ml = fixture().read<uint8_t>("ml_dtypes_e2m1fn_x2");
  int nans = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const uint8_t theirs = i % 2 == 0 ? e2m1_even(ml[i / 2]) : e2m1_odd(ml[i / 2]);
    if (std::isnan(x[i])) {
      EXPECT_EQ(theirs & 0x7, 0) << i;  // ml_dtypes: NaN -> ±0
      ++nans;
      continue;
    }
    ASSERT_EQ(encode_e2m1(x[i]), theirs) << i << ": " << x[i];
  }
  EXPECT_GT(nans, 0);
}

TEST(TorchFixture, DecodesMatchEveryByte) {
  const auto e4m3 = fixture().read<float>("decode_torch_e4m3fn");
  const auto e5m2 = fixture().read<float>("decode_torch_e5m2");
  const auto e8m0 = fixture().read<float>("decode_torch_e8m0fnu");
  ASSERT_EQ(e4m3.size(), 256u);
  for (int b = 0; b < 256; ++b) {
    EXPECT_TRUE(same_float(decode_e4m3(b), e4m3[b])) << b;
    EXPECT_TRUE(same_float(decode_e5m2(b), e5m2[b])) << b;
    EXPECT_TRUE(same_float(decode_e8m0(b), e8m0[b])) << b;
  }
  for (const char* where : {"decode_nvidia_device_e2m1x2", "decode_nvidia_host_e2m1x2"}) {
    const auto pairs = fixture().read<float>(where);
    ASSERT_EQ(pairs.size(), 512u);
    for (int b = 0; b < 256; ++b) {
      EXPECT_TRUE(same_float(decode_e2m1(e2m1_even(b)), pairs[2 * b])) << where << " " << b;
      EXPECT_TRUE(same_float(decode_e2m1(e2m1_odd(b)), pairs[2 * b + 1])) << where << " " << b;
    }
  }
  const auto ml = fixture().read<float>("decode_ml_dtypes_e2m1fn");
  for (int code = 0; code < 16; ++code) EXPECT_TRUE(same_float(decode_e2m1(code), ml[code])) << code;
}

}  // namespace
}  // namespace fp4serve
