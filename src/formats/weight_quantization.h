// Quantizers that turn a dense float32 weight W [N, K] (row-major) into a LinearWeight of
// each encoding, with each producer's exact scale rule (scale_rules.h). Results own their
// tensors. Non-finite weights, bad shapes and bad options throw Error naming `name`.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "formats/linear_weight.h"

namespace fp4serve {

// Largest |w| (0 for an empty span). Throws Error naming `name` on NaN or Inf.
float absolute_max(std::span<const float> w, const std::string& name);

// Unquantized copies: BF16 / F16 round to nearest even; F32 copies.
LinearWeight make_dense_weight(std::span<const float> w, int64_t n, int64_t k, WeightEncoding encoding,
                               std::string name);

enum class Fp8ScaleFormat : uint8_t {
  kE8M0,  // DeepSeek V4 (scale_fmt ue8m0): power-of-two scales stored as E8M0 bytes
  kF32,   // Flash-Base / V3 style: amax / 448 stored as float32
};

// FP8 E4M3 with one scale per 128x128 block (edge blocks may be partial): per block,
// scale = fp8_scale_ue8m0(amax) or fp8_scale_f32(amax), code = E4M3(clamp(w / scale, ±448)).
LinearWeight quantize_fp8_block(std::span<const float> w, int64_t n, int64_t k, Fp8ScaleFormat scale_format,
                                std::string name);

// MXFP4 as DeepSeek's FP4 experts: per 1x32 block along K, scale = fp4_scale_ue8m0(amax) (E8M0),
// code = E2M1(clamp(w / scale, ±6)) (nearest even, the sign of a value rounding to zero kept).
// Weight I8 [N, K/2] packed low nibble first, scale F8_E8M0 [N, K/32]. K must be a multiple of 32.
LinearWeight quantize_mxfp4(std::span<const float> w, int64_t n, int64_t k, std::string name);

struct Nvfp4Options {
  // amax for weight_scale_2; defaults to this tensor's own. Pass max(amax(w1), amax(w3)) to
  // quantize a gate/up pair with one shared global scale, as ModelOpt does for fused layers.
  std::optional<float> global_amax;
  float input_scale = 0.0f;  // activation amax / 2688 from calibration; 0 = none (W4A16)
};

// NVFP4 as ModelOpt's NVFP4QTensor: global_scale = nvfp4_global_scale(amax), per 1x16 block
// sf = nvfp4_block_scale(block_amax, global_scale), code = E2M1(w / (float(sf) * global_scale))
// with ModelOpt's sign rule (-0 input gives +0). An all-zero tensor gets global_scale 0, block
// scales 1.0 and zero codes. Weight U8 [N, K/2], scale F8_E4M3 [N, K/16]. K must be a
// multiple of 16.
LinearWeight quantize_nvfp4(std::span<const float> w, int64_t n, int64_t k, const Nvfp4Options& options,
                            std::string name);

struct QuantizeOptions {
  Fp8ScaleFormat fp8_scale_format = Fp8ScaleFormat::kE8M0;
  Nvfp4Options nvfp4;
};

// Any encoding from float32, by the functions above.
LinearWeight quantize_weight(std::span<const float> w, int64_t n, int64_t k, WeightEncoding encoding, std::string name,
                             const QuantizeOptions& options = {});

}  // namespace fp4serve
