// The numeric policy (backend/activation_policy.h): which linears get FP8 inputs and
// when the QAT simulations run, per set of encodings and --act-quant; and --act-quant
// fp8 on an NVFP4 linear (W4A8, the Hopper path) through the CPU backend against an
// independent float64 product of the dequantized weight and the e4m3-quantized input,
// both made by formats/ functions rather than by the code under test.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

#include "backend/activation_policy.h"
#include "backend/backend.h"
#include "formats/activation_quantization.h"
#include "formats/weight_dequantization.h"
#include "formats/weight_quantization.h"

namespace fp4serve {
namespace {

using E = WeightEncoding;

TEST(NumericPolicy, EachModeOnEachKindOfCheckpoint) {
  const std::set<E> bf16{E::kBF16}, nvfp4{E::kNVFP4, E::kBF16}, native{E::kFP8Block, E::kMXFP4, E::kBF16};

  // auto: DeepSeek's numerics on native checkpoints only.
  Numerics n = numerics_for(bf16, ActQuantMode::kAuto);
  EXPECT_FALSE(n.fp8_activations());
  EXPECT_FALSE(n.qat_simulation);
  n = numerics_for(nvfp4, ActQuantMode::kAuto);
  EXPECT_FALSE(n.quantizes_input(E::kNVFP4));
  EXPECT_FALSE(n.qat_simulation);
  n = numerics_for(native, ActQuantMode::kAuto);
  EXPECT_TRUE(n.quantizes_input(E::kFP8Block));
  EXPECT_TRUE(n.quantizes_input(E::kMXFP4));
  EXPECT_FALSE(n.quantizes_input(E::kNVFP4));
  EXPECT_FALSE(n.quantizes_input(E::kBF16));
  EXPECT_TRUE(n.qat_simulation);

  // fp8: every 8- and 4-bit linear, never a 16/32-bit one; QAT simulations only where native.
  n = numerics_for(nvfp4, ActQuantMode::kFp8);
  EXPECT_TRUE(n.quantizes_input(E::kNVFP4));
  EXPECT_TRUE(n.quantizes_input(E::kMXFP4));
  EXPECT_TRUE(n.quantizes_input(E::kFP8Block));
  EXPECT_FALSE(n.quantizes_input(E::kBF16));
  EXPECT_FALSE(n.quantizes_input(E::kF16));
  EXPECT_FALSE(n.quantizes_input(E::kF32));
  EXPECT_FALSE(n.qat_simulation);
  n = numerics_for(native, ActQuantMode::kFp8);
  EXPECT_TRUE(n.quantizes_input(E::kNVFP4));
  EXPECT_TRUE(n.qat_simulation);

  // off: nothing anywhere.
  for (const auto& set : {bf16, nvfp4, native}) {
    n = numerics_for(set, ActQuantMode::kOff);
    EXPECT_FALSE(n.fp8_activations());
    EXPECT_FALSE(n.qat_simulation);
  }

  ActQuantMode mode;
  EXPECT_TRUE(parse_act_quant("fp8", &mode));
  EXPECT_EQ(mode, ActQuantMode::kFp8);
  EXPECT_EQ(act_quant_name(mode), "fp8");
  EXPECT_FALSE(parse_act_quant("on", &mode));
}

TEST(NumericPolicy, Nvfp4LinearWithFp8ActivationsIsW4A8) {
  const int64_t N = 48, K = 384, rows = 3;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(N * K)), x(static_cast<size_t>(rows * K));
  for (float& v : w) v = normal(rng) * 0.05f;
  for (float& v : x) v = normal(rng) * 3.0f;
  const LinearWeight weight = quantize_weight(w, N, K, E::kNVFP4, "layers.0.ffn.experts.0.w1");
  ASSERT_EQ(weight.encoding, E::kNVFP4);
  const std::vector<float> dequantized = dequantize_to_f32(weight);
  std::vector<float> xq = x;  // e4m3 per 1x128, power-of-two scales, as DeepSeek's act_quant
  simulate_activations_fp8(xq, rows, K, kFp8ActivationBlock, ActivationScale::kUe8m0);

  const Numerics policy = numerics_for({E::kNVFP4}, ActQuantMode::kFp8);
  const auto backend = make_backend(DeviceKind::kCpu);
  std::vector<float> y(static_cast<size_t>(rows * N), NAN), plain(y.size(), NAN);
  LinearJob job;
  job.weight = &weight;
  job.x = x.data();
  job.rows = rows;
  job.y = y.data();
  job.act = policy.quantizes_input(weight.encoding) ? ActivationQuant::kFP8Block128 : ActivationQuant::kNone;
  ASSERT_EQ(job.act, ActivationQuant::kFP8Block128);
  backend->linear(std::span<const LinearJob>(&job, 1));
  job.act = ActivationQuant::kNone;
  job.y = plain.data();
  backend->linear(std::span<const LinearJob>(&job, 1));

  int64_t differs = 0;
  for (int64_t m = 0; m < rows; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double ref = 0, mag = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double p = static_cast<double>(dequantized[n * K + k]) * xq[m * K + k];
        ref += p;
        mag += std::fabs(p);
      }
      const double got = y[m * N + n];
      // fp32 accumulation over K products of exact fp32 values: within 1e-5 of the magnitude.
      ASSERT_LE(std::fabs(got - ref), 1e-5 * mag + 1e-30) << "row " << m << " out " << n;
      differs += y[m * N + n] != plain[m * N + n];
    }
  EXPECT_GT(differs, rows * N / 2) << "the FP8 input quantization changed almost nothing: was it applied?";
}

}  // namespace
}  // namespace fp4serve
