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

#include "backend/cpu/cpu_isa.h"

namespace fp4serve::cpu {

struct RowKernels {
  void (*decode_bf16)(const uint16_t* w, int64_t n, float* out);
  void (*decode_f16)(const uint16_t* w, int64_t n, float* out);
  // acc[r] += sum_k w[k] * x[r][k] for r < rows (rows <= kMaxDotRows).
  void (*dot)(const float* w, int64_t n, const float* const* x, int rows, float* acc);
  // y[k] += a * x[k]
  void (*axpy)(float a, const float* x, int64_t n, float* y);

  // One weight row against `rows` activation rows (1..kMaxDotRows) without a decode
  // buffer: out[r] = sum over blocks b of scales[b] * sum_{k in b} code(w[k]) * x[r][k].
  // The weights are decoded once in registers and used for every row (prefill's tile
  // reuse), and each row's result is bit for bit the one-row result: the same
  // operations in the same order whatever `rows` is (decode = prefill, batch-invariant).
  // FP8: K E4M3 bytes, blocks of 128 (the last may be partial).
  void (*dot_fp8_rows)(const uint8_t* w, int64_t K, const float* scales, const float* const* x, int rows, float* out);
  // FP4: K codes (K/2 bytes), blocks of 16 or 32, K a multiple of the block.
  void (*dot_fp4_rows)(const uint8_t* packed, int64_t K, const float* scales, int64_t block, const float* const* x, int rows,
                       float* out);

  // Optional (null where the level lacks them): the FP8 dot against activations
  // converted once per call by prepare_fp8_x (bf16, in the kernel's order; K % 128 == 0,
  // activations that are bf16 values).
  void (*prepare_fp8_x)(const float* x, int64_t K, uint16_t* out) = nullptr;
  void (*dot_fp8_rows_prepared)(const uint8_t* w, int64_t K, const float* scales, const uint16_t* const* xp, int rows,
                                float* out) = nullptr;
  // The same for MXFP4 (E8M0 scale bytes of the row, K % 128 == 0), x from prepare_fp4_x.
  void (*prepare_fp4_x)(const float* x, int64_t K, uint16_t* out) = nullptr;
  void (*dot_mxfp4_rows_prepared)(const uint8_t* packed, int64_t K, const uint8_t* e8m0, const uint16_t* const* xp, int rows,
                                  float* out) = nullptr;
  // Optional: the prepared FP8 / MXFP4 dots for two weight rows at once (w[0], w[1] with
  // their scales; out[i][r]), so each activation load feeds both rows (prefill). Each
  // result is bit for bit the one-row kernel's.
  void (*dot_fp8_rows_prepared_x2)(const uint8_t* const* w, int64_t K, const float* const* scales, const uint16_t* const* xp,
                                   int rows, float* const* out) = nullptr;
  void (*dot_mxfp4_rows_prepared_x2)(const uint8_t* const* packed, int64_t K, const uint8_t* const* e8m0,
                                     const uint16_t* const* xp, int rows, float* const* out) = nullptr;
  // NVFP4 (E4M3 scale bytes of the row, K % 128 == 0), x from prepare_fp4_x; the result
  // before the global scale. Each block's sum is exact, then scaled and summed in fp32.
  void (*dot_nvfp4_rows_prepared)(const uint8_t* packed, int64_t K, const uint8_t* e4m3, const uint16_t* const* xp, int rows,
                                  float* out) = nullptr;
  // BF16 weights against bf16 activations in natural order (prepare_bf16_x).
  void (*prepare_bf16_x)(const float* x, int64_t K, uint16_t* out) = nullptr;
  void (*dot_bf16_rows_prepared)(const uint16_t* w, int64_t K, const uint16_t* const* xp, int rows, float* out) = nullptr;
};

// Calls kernel<R>(args..., out) with R = rows (1..kMaxDotRows): the tile kernels are
// templates on their row count so that every register array has a constant size.
#define FP4SERVE_DISPATCH_ROWS(kernel, rows, ...)          \
  switch (rows) {                                         \
    case 1: kernel<1>(__VA_ARGS__); break;                \
    case 2: kernel<2>(__VA_ARGS__); break;                \
    case 3: kernel<3>(__VA_ARGS__); break;                \
    default: kernel<4>(__VA_ARGS__); break;               \
  }

inline constexpr int kMaxDotRows = 4;

const RowKernels& row_kernels_scalar();
const RowKernels& row_kernels_avx2();
const RowKernels& row_kernels_avx512();
const RowKernels& row_kernels_avx512_bf16();
const RowKernels& row_kernels(CpuIsa isa);

}  // namespace fp4serve::cpu
