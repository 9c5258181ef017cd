// Host side of the GPU parity binary: random weights and activations in every encoding
// (random codes, so every bit pattern a kernel can meet is exercised), and plain float64
// references built only on the formats module's decoders (weight_dequantization.h,
// activation_quantization.h) — independent of every CUDA kernel.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "formats/linear_weight.h"

namespace fp4serve::parity {

using Rng = std::mt19937_64;

struct ScaleRange {
  int lo = 120, hi = 134;  // E8M0 codes (MXFP4, FP8 block) drawn uniformly in [lo, hi]
};

// A weight of the given encoding with uniformly random codes: FP8 every non-NaN E4M3 byte,
// FP4 every nibble, NVFP4 block scales every positive finite E4M3 byte (subnormals too), a
// random global scale; BF16 values ~ N(0, 1).
LinearWeight random_weight(WeightEncoding encoding, int64_t n, int64_t k, Rng& rng, ScaleRange scales = {},
                           std::string name = "parity");

// bf16 bits of `count` values ~ N(0, sigma) with a few outliers (x64) per 128.
std::vector<uint16_t> random_bf16(int64_t count, float sigma, Rng& rng);

// Activations as the FP8 GEMMs take them, from the formats reference quantizer.
struct Fp8Activations {
  std::vector<uint8_t> codes;  // [m, k]
  std::vector<float> scales;   // [m, k/128]
};
Fp8Activations quantize_reference(std::span<const uint16_t> x_bf16, int64_t m, int64_t k);

// Decoded activations, float64 [m, k]: E4M3 codes times scales, or bf16 values.
std::vector<double> decode_fp8_activations(const Fp8Activations& a, int64_t m, int64_t k);
std::vector<double> decode_bf16_values(std::span<const uint16_t> x);

// y[m, n] = x[m, k] * W^T in float64, W decoded by formats' dequantize_to_f32; with
// `magnitudes`, the sums of |x * w| instead (what bounds accumulation rounding).
std::vector<double> reference_gemm(const LinearWeight& w, std::span<const double> x, int64_t m,
                                   bool magnitudes = false);

// Comparison of a GPU result with a reference. Each element may differ by 2^-8 of itself
// (the bf16 output rounding: half an ulp of 8 significant bits) plus `bound` times the
// reference's RMS (sums in fp32, and for the MoE intermediate roundings) plus `extra[i]` when
// given (a kernel's documented accumulation precision); over the whole output
// ||got - ref|| / ||ref|| must stay within `bound`. Non-finite values (NaN poison left
// unwritten) always fail.
struct Comparison {
  double rel_l2 = 0.0;
  double worst = 0.0;  // max over elements of |got - ref| / (2^-8 |ref| + bound * rms(ref) + extra)
  int64_t non_finite = 0;
  bool passed(double bound) const { return non_finite == 0 && rel_l2 <= bound && worst <= 1.0; }
};
Comparison compare(std::span<const float> got, std::span<const double> ref, double bound,
                   std::span<const double> extra = {});

// The MoE of the reference (DeepSeek's inference/model.py, Expert and MoE) for routed experts
// only, float64 sums with the reference's roundings: g, u rounded to bf16; clamp; hmid = bf16(w * silu(g) * u);
// hmid quantized to FP8 per 128 (formats); each expert output rounded to bf16; y summed in
// ascending expert id. x: the FP8 activations of the tokens.
std::vector<double> reference_moe(std::span<const LinearWeight> w1, std::span<const LinearWeight> w3,
                                  std::span<const LinearWeight> w2, const Fp8Activations& x, int64_t tokens,
                                  int64_t hidden, std::span<const int> expert_ids, std::span<const float> weights,
                                  int top_k, float swiglu_limit);

}  // namespace fp4serve::parity
