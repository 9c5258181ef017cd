// The inner loops of the linear op, one table per SIMD level: decode a stretch of
// one weight row (any encoding) into fp32 with its block scales applied, and
// accumulate dot products of that stretch with a few activation rows.
//
// Decoding first and multiplying second keeps every product exact: an FP8 or E2M1
// weight times its power-of-two (E8M0) or E4M3 block scale fits fp32 exactly, as do
// FP8-quantized activations times their power-of-two scales; only the fp32
// summation order differs from DeepSeek's block-by-block GEMMs.
#pragma once

#include <cstdint>

#include "kernels/cpu/cpu_isa.h"

namespace fp4serve::cpu {

struct RowKernels {
  void (*decode_bf16)(const uint16_t* w, int64_t n, float* out);
  void (*decode_f16)(const uint16_t* w, int64_t n, float* out);
  // n E4M3 bytes, all in one scale block.
  void (*decode_fp8)(const uint8_t* w, int64_t n, float scale, float* out);
  // n E2M1 codes (n/2 bytes, low nibble first), n a multiple of 16; scales[i] applies to
  // elements [i*block, (i+1)*block), block 16 (NVFP4) or 32 (MXFP4).
  void (*decode_fp4)(const uint8_t* packed, int64_t n, const float* scales, int64_t block, float* out);
  // acc[r] += sum_k w[k] * x[r][k] for r < rows (rows <= kMaxDotRows).
  void (*dot)(const float* w, int64_t n, const float* const* x, int rows, float* acc);
  // y[k] += a * x[k]
  void (*axpy)(float a, const float* x, int64_t n, float* y);

  // One weight row against one activation row without the decode buffer (decode
  // steps): sum over blocks b of scales[b] * sum_{k in b} code(w[k]) * x[k].
  // FP8: K E4M3 bytes, blocks of 128 (the last may be partial).
  float (*dot_fp8_row)(const uint8_t* w, int64_t K, const float* scales, const float* x);
  // FP4: K codes (K/2 bytes), blocks of 16 or 32, K a multiple of the block.
  float (*dot_fp4_row)(const uint8_t* packed, int64_t K, const float* scales, int64_t block, const float* x);

  // Optional (null where the level lacks them): the FP8 one-row dot against activations
  // converted once per call by prepare_fp8_x (bf16, in the kernel's order; K % 128 == 0,
  // activations that are bf16 values).
  void (*prepare_fp8_x)(const float* x, int64_t K, uint16_t* out) = nullptr;
  float (*dot_fp8_row_prepared)(const uint8_t* w, int64_t K, const float* scales, const uint16_t* xp) = nullptr;
  // The same for MXFP4 (E8M0 scale bytes of the row, K % 32 == 0), x from prepare_fp4_x.
  void (*prepare_fp4_x)(const float* x, int64_t K, uint16_t* out) = nullptr;
  float (*dot_mxfp4_row_prepared)(const uint8_t* packed, int64_t K, const uint8_t* e8m0, const uint16_t* xp) = nullptr;
  // BF16 weights against bf16 activations in natural order (prepare_bf16_x).
  void (*prepare_bf16_x)(const float* x, int64_t K, uint16_t* out) = nullptr;
  float (*dot_bf16_row_prepared)(const uint16_t* w, int64_t K, const uint16_t* xp) = nullptr;
};

inline constexpr int kMaxDotRows = 4;

const RowKernels& row_kernels_scalar();
const RowKernels& row_kernels_avx2();
const RowKernels& row_kernels_avx512();
const RowKernels& row_kernels_avx512_bf16();
const RowKernels& row_kernels(CpuIsa isa);

}  // namespace fp4serve::cpu
