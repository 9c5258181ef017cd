// The inner loops of the linear op, one table per SIMD level: one-row dot products
// for the block-scaled encodings (FP8, MXFP4, NVFP4: decode in registers, multiply,
// apply each block's scale to the block's sum), and for BF16 / F16 / F32 a decode of
// a stretch of a row into fp32 plus a dot of that stretch with a few activation rows.
//
// Every product is exact in fp32 (a few significant bits times a few, activations
// being bf16 or FP8-quantized values): results differ from DeepSeek's block-by-block
// GEMMs only in the order of fp32 additions.
#pragma once

#include <cstdint>

#include "kernels/cpu/cpu_isa.h"

namespace fp4serve::cpu {

struct RowKernels {
  void (*decode_bf16)(const uint16_t* w, int64_t n, float* out);
  void (*decode_f16)(const uint16_t* w, int64_t n, float* out);
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
