// AVX-512 row kernels (F, BW, VL, DQ). Compiled for that target per function, so the
// rest of the library keeps its baseline; chosen at run time by cpu_isa.
// GCC 12 reports its own AVX-512 intrinsic headers (_mm512_undefined_*) as reading
// uninitialized values once inlined here; the warning is a known false positive.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "formats/number_formats.h"
#include "backend/cpu/row_kernels.h"

#define FP4SERVE_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

namespace fp4serve::cpu {
namespace {

FP4SERVE_AVX512 void decode_bf16(const uint16_t* w, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i)));
    _mm512_storeu_ps(out + i, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
  }
  for (; i < n; ++i) out[i] = fp4serve::decode_bf16(w[i]);
}

FP4SERVE_AVX512 void decode_f16(const uint16_t* w, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i))));
  for (; i < n; ++i) out[i] = fp4serve::decode_f16(w[i]);
}

template <int R>
FP4SERVE_AVX512 void dot_rows(const float* w, int64_t n, const float* const* x, float* acc) {
  __m512 a[R], b[R];
  for (int r = 0; r < R; ++r) a[r] = b[r] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 w0 = _mm512_loadu_ps(w + i), w1 = _mm512_loadu_ps(w + i + 16);
    for (int r = 0; r < R; ++r) {
      a[r] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x[r] + i), a[r]);
      b[r] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x[r] + i + 16), b[r]);
    }
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 w0 = _mm512_maskz_loadu_ps(m, w + i);
    for (int r = 0; r < R; ++r) a[r] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, x[r] + i), a[r]);
  }
  for (int r = 0; r < R; ++r) acc[r] += _mm512_reduce_add_ps(_mm512_add_ps(a[r], b[r]));
}

FP4SERVE_AVX512 void dot(const float* w, int64_t n, const float* const* x, int rows, float* acc) {
  switch (rows) {
    case 1: dot_rows<1>(w, n, x, acc); break;
    case 2: dot_rows<2>(w, n, x, acc); break;
    case 3: dot_rows<3>(w, n, x, acc); break;
    default: dot_rows<4>(w, n, x, acc); break;
  }
}

FP4SERVE_AVX512 void axpy(float a, const float* x, int64_t n, float* y) {
  const __m512 av = _mm512_set1_ps(a);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

// 16 E4M3 bytes -> their values * 2^-8: the E4M3 bits moved into an IEEE half (sign to
// bit 15, exponent and mantissa to bits 13..7) read by the F16C conversion, which is
// exact and handles E4M3 subnormals (half subnormals) without denormal slow paths.
// E4M3 NaN codes are rejected by the loader.
FP4SERVE_AVX512 inline __m512 fp8_over_256(const uint8_t* w) {
  const __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
  const __m256i mag = _mm256_slli_epi16(_mm256_and_si256(b, _mm256_set1_epi16(0x7F)), 7);
  const __m256i sign = _mm256_slli_epi16(_mm256_and_si256(b, _mm256_set1_epi16(0x80)), 8);
  return _mm512_cvtph_ps(_mm256_or_si256(mag, sign));
}

template <int R>
FP4SERVE_AVX512 void dot_fp8_tile(const uint8_t* w, int64_t K, const float* scales, const float* const* x, float* out) {
  __m512 total[R];
  for (int r = 0; r < R; ++r) total[r] = _mm512_setzero_ps();
  int64_t k = 0;
  for (int64_t b = 0; k + 128 <= K; ++b, k += 128) {
    __m512 a0[R], a1[R];
    for (int r = 0; r < R; ++r) a0[r] = a1[r] = _mm512_setzero_ps();
    for (int64_t i = 0; i < 128; i += 32) {
      const __m512 w0 = fp8_over_256(w + k + i), w1 = fp8_over_256(w + k + i + 16);
      for (int r = 0; r < R; ++r) {
        a0[r] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x[r] + k + i), a0[r]);
        a1[r] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x[r] + k + i + 16), a1[r]);
      }
    }
    const __m512 scale = _mm512_set1_ps(scales[b] * 256.0f);
    for (int r = 0; r < R; ++r) total[r] = _mm512_fmadd_ps(_mm512_add_ps(a0[r], a1[r]), scale, total[r]);
  }
  float tail[R] = {};
  if (k < K) {
    const float* table = kE4M3Values.data();
    for (int64_t i = k; i < K; ++i)
      for (int r = 0; r < R; ++r) tail[r] += table[w[i]] * x[r][i];
    for (int r = 0; r < R; ++r) tail[r] *= scales[k / 128];
  }
  for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_ps(total[r]) + tail[r];
}

FP4SERVE_AVX512 void dot_fp8_rows(const uint8_t* w, int64_t K, const float* scales, const float* const* x, int rows, float* out) {
  FP4SERVE_DISPATCH_ROWS(dot_fp8_tile, rows, w, K, scales, x, out)
}

template <int R>
FP4SERVE_AVX512 void dot_fp4_tile(const uint8_t* packed, int64_t K, const float* scales, int64_t block, const float* const* x,
                                  float* out) {
  const __m512 lut = _mm512_loadu_ps(kE2M1Values);
  const __m128i low4 = _mm_set1_epi8(0x0F);
  __m512 total[R];
  for (int r = 0; r < R; ++r) total[r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 32) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed + k / 2));
    const __m128i lo = _mm_and_si128(bytes, low4);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), low4);
    const __m512 v0 = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)), lut);  // elements k..k+15
    const __m512 v1 = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm_unpackhi_epi8(lo, hi)), lut);  // k+16..k+31
    for (int r = 0; r < R; ++r) {
      const __m512 p0 = _mm512_mul_ps(v0, _mm512_loadu_ps(x[r] + k));
      const __m512 p1 = _mm512_mul_ps(v1, _mm512_loadu_ps(x[r] + k + 16));
      if (block == 32) {
        total[r] = _mm512_fmadd_ps(_mm512_add_ps(p0, p1), _mm512_set1_ps(scales[k / 32]), total[r]);
      } else {
        total[r] = _mm512_fmadd_ps(p0, _mm512_set1_ps(scales[k / 16]), total[r]);
        total[r] = _mm512_fmadd_ps(p1, _mm512_set1_ps(scales[k / 16 + 1]), total[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_ps(total[r]);
}

FP4SERVE_AVX512 void dot_fp4_rows(const uint8_t* packed, int64_t K, const float* scales, int64_t block, const float* const* x,
                                  int rows, float* out) {
  FP4SERVE_DISPATCH_ROWS(dot_fp4_tile, rows, packed, K, scales, block, x, out)
}

}  // namespace

const RowKernels& row_kernels_avx512() {
  static const RowKernels k{decode_bf16, decode_f16, dot, axpy, dot_fp8_rows, dot_fp4_rows};
  return k;
}

}  // namespace fp4serve::cpu
