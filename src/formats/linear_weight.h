// A linear layer's weight is one value of a closed set of encodings. The loader
// produces it (checkpoint/), every backend multiplies by it (kernels/), and the
// model never branches on how it was stored.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/tensor.h"

namespace fp4serve {

enum class WeightEncoding : uint8_t {
  kBF16,      // weight BF16 [N, K]
  kF16,       // weight F16 [N, K]
  kF32,       // weight F32 [N, K]
  kFP8Block,  // weight F8_E4M3 [N, K]; scale [ceil(N/128), ceil(K/128)] F8_E8M0 or F32 (dequant multipliers)
  kMXFP4,     // weight I8/U8 [N, K/2] packed E2M1 (low nibble = even k); scale F8_E8M0 [N, K/32]
  kNVFP4,     // weight U8 [N, K/2] packed E2M1; scale F8_E4M3 [N, K/16]; global_scale = weight_scale_2
};

std::string_view encoding_name(WeightEncoding encoding);  // "bf16", "fp8-block", "mxfp4", "nvfp4", ...
// The inverse of encoding_name; returns false for an unknown name.
bool parse_encoding_name(std::string_view name, WeightEncoding* out);

struct LinearWeight {
  WeightEncoding encoding = WeightEncoding::kBF16;
  int64_t out_features = 0;  // N
  int64_t in_features = 0;   // K (logical, unpacked)
  TensorView weight;
  TensorView scale;           // absent (nbytes == 0) for BF16/F16/F32
  float global_scale = 1.0f;  // NVFP4 weight_scale_2 (amax / 2688); 1 otherwise
  float input_scale = 0.0f;   // NVFP4 input_scale (activation amax / 2688); 0 when absent
  std::string name;           // canonical name, e.g. "layers.3.attn.wq_a"

  // Bytes this weight occupies in its encoding (weight + scales).
  size_t stored_bytes() const { return weight.nbytes + scale.nbytes; }
};

// Checks that the weight and scale tensors fit the encoding: dtypes, shapes (packed and
// block-scale shapes derived from out_features x in_features), byte counts, and a finite,
// non-negative NVFP4 global scale. Reads no element data. Throws Error naming the weight.
void validate_linear_weight(const LinearWeight& weight);

// How error messages name a weight: its canonical name, else its tensor's origin.
std::string linear_weight_label(const LinearWeight& weight);

}  // namespace fp4serve
