#include <algorithm>

#include "formats/number_formats.h"
#include "backend/cpu/row_kernels.h"

namespace fp4serve::cpu {
namespace {

void decode_bf16(const uint16_t* w, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = fp4serve::decode_bf16(w[i]);
}

void decode_f16(const uint16_t* w, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = fp4serve::decode_f16(w[i]);
}

void dot(const float* w, int64_t n, const float* const* x, int rows, float* acc) {
  for (int r = 0; r < rows; ++r) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; ++i) s += w[i] * x[r][i];
    acc[r] += s;
  }
}

void axpy(float a, const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

template <int R>
void dot_fp8_tile(const uint8_t* w, int64_t K, const float* scales, const float* const* x, float* out) {
  const float* table = kE4M3Values.data();
  float total[R] = {};
  for (int64_t b = 0; b * 128 < K; ++b) {
    float s[R] = {};
    for (int64_t k = b * 128; k < std::min<int64_t>(K, (b + 1) * 128); ++k) {
      const float v = table[w[k]];
      for (int r = 0; r < R; ++r) s[r] += v * x[r][k];
    }
    for (int r = 0; r < R; ++r) total[r] += s[r] * scales[b];
  }
  for (int r = 0; r < R; ++r) out[r] = total[r];
}

void dot_fp8_rows(const uint8_t* w, int64_t K, const float* scales, const float* const* x, int rows, float* out) {
  FP4SERVE_DISPATCH_ROWS(dot_fp8_tile, rows, w, K, scales, x, out)
}

template <int R>
void dot_fp4_tile(const uint8_t* packed, int64_t K, const float* scales, int64_t block, const float* const* x, float* out) {
  float total[R] = {};
  for (int64_t b = 0; b * block < K; ++b) {
    float s[R] = {};
    for (int64_t k = b * block; k < (b + 1) * block; ++k) {
      const uint8_t byte = packed[k / 2];
      const float v = kE2M1Values[(k % 2 == 0) ? (byte & 0xF) : (byte >> 4)];
      for (int r = 0; r < R; ++r) s[r] += v * x[r][k];
    }
    for (int r = 0; r < R; ++r) total[r] += s[r] * scales[b];
  }
  for (int r = 0; r < R; ++r) out[r] = total[r];
}

void dot_fp4_rows(const uint8_t* packed, int64_t K, const float* scales, int64_t block, const float* const* x, int rows,
                  float* out) {
  FP4SERVE_DISPATCH_ROWS(dot_fp4_tile, rows, packed, K, scales, block, x, out)
}

}  // namespace

const RowKernels& row_kernels_scalar() {
  static const RowKernels k{decode_bf16, decode_f16, dot, axpy, dot_fp8_rows, dot_fp4_rows};
  return k;
}

const RowKernels& row_kernels(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512Bf16: return row_kernels_avx512_bf16();
    case CpuIsa::kAvx512: return row_kernels_avx512();
    case CpuIsa::kAvx2: return row_kernels_avx2();
    case CpuIsa::kScalar: break;
  }
  return row_kernels_scalar();
}

}  // namespace fp4serve::cpu
