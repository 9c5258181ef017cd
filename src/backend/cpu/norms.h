// The normalizations of DeepSeek-V4 with the reference's rounding points (DeepSeek's
// inference/model.py: RMSNorm, and Attention.forward's per-head query norm).
#pragma once

#include <cstdint>

namespace fp4serve::cpu {

// y = bf16(w * (x * rsqrt(mean(x^2) + eps))), computed in fp32. y may alias x.
void rms_norm(const float* x, const float* weight, int64_t n, float eps, float* y);

// The same over `rows` rows of n, on the thread pool when large.
void rms_norm_rows(const float* x, const float* weight, int64_t rows, int64_t n, float eps, float* y);

// The per-head query norm, unweighted, in bf16 tensor arithmetic as the reference
// writes it: bf16(x^2), fp32-accumulated mean rounded to bf16, + eps in bf16, rsqrt in
// bf16, product in bf16. In place.
void head_rms_norm_bf16(float* x, int64_t n, float eps);

}  // namespace fp4serve::cpu
