// Reference decode of any LinearWeight to float32. This is the independent, deliberately
// plain definition of what a stored weight means; every kernel and quantizer is tested
// against it, so it favours being obviously right over being fast.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "formats/linear_weight.h"

namespace fp4serve {

// W as float32 [N, K], row-major. Validates the weight first (Error naming it).
//   bf16/f16/f32: the value itself
//   fp8-block:    E4M3(w[n,k]) * scale[n/128, k/128]        (E8M0 or F32 scale)
//   mxfp4:        E2M1(nib(n,k)) * E8M0(scale[n, k/32])
//   nvfp4:        (E2M1(nib(n,k)) * E4M3(scale[n, k/16])) * global_scale
// where nib(n,k) is the low nibble of byte [n, k/2] for even k, the high one for odd k.
// The NVFP4 product is formed in that order: the first product is exact, so the result is
// the true value rounded once.
std::vector<float> dequantize_to_f32(const LinearWeight& weight);

// Rows [first_row, first_row + row_count) of the same, into out (row_count * K floats).
void dequantize_rows(const LinearWeight& weight, int64_t first_row, int64_t row_count, std::span<float> out);

}  // namespace fp4serve
