// Per-linear encoding detection from the stored tensors (dtype + which scale
// tensors exist + their dtypes and shapes), never from the config:
//   BF16 / F16 / F32   weight [N, K], no scales
//   FP8 block-128      weight F8_E4M3 [N, K] + scale F8_E8M0 or F32 [ceil(N/128), ceil(K/128)]
//   MXFP4              weight I8/U8 [N, K/2] + scale F8_E8M0 [N, K/32]
//   NVFP4              weight U8/I8 [N, K/2] + weight_scale F8_E4M3 [N, K/16] + weight_scale_2 F32 scalar
//                      (+ input_scale F32 scalar)
// Everything is checked against the logical [N, K] the config implies; errors name
// the tensor and say what was expected.
#pragma once

#include <string>

#include "base/tensor.h"
#include "formats/linear_weight.h"

namespace fp4serve {

// The stored tensors of one linear, gathered by the naming tables.
struct StoredLinear {
  std::string module;  // the checkpoint's own module name, for messages
  const TensorView* weight = nullptr;
  const TensorView* block_scale = nullptr;
  std::string block_scale_suffix;  // "scale", "weight_scale_inv" or "weight_scale"
  const TensorView* global_scale = nullptr;
  const TensorView* input_scale = nullptr;
};

// Detects the encoding and checks all shapes and dtypes (headers only; scalar
// global/input scales are read and must be finite and positive). The views in the
// result share the stored bytes.
LinearWeight detect_linear(const StoredLinear& stored, int64_t out_features, int64_t in_features,
                           const std::string& canonical, const std::string& shape_formula);

// Checks every block-scale value of a detected linear: NaN, Inf, zero and negative
// scales are errors naming the tensor and the first bad element. Reads the scale bytes.
void check_scale_values(const LinearWeight& linear);

// Reads a scalar F32 tensor (shape [] or [1]).
float read_scalar_f32(const TensorView& tensor);

}  // namespace fp4serve
