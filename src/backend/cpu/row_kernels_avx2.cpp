// AVX2 + FMA + F16C row kernels, the fallback for processors without AVX-512.
#include <immintrin.h>

#include "formats/number_formats.h"
#include "backend/cpu/row_kernels.h"

#define FP4SERVE_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace fp4serve::cpu {
namespace {

FP4SERVE_AVX2 void decode_bf16(const uint16_t* w, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i)));
    _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
  }
  for (; i < n; ++i) out[i] = fp4serve::decode_bf16(w[i]);
}

FP4SERVE_AVX2 void decode_f16(const uint16_t* w, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i))));
  for (; i < n; ++i) out[i] = fp4serve::decode_f16(w[i]);
}

FP4SERVE_AVX2 void decode_fp4(const uint8_t* packed, int64_t n, const float* scales, int64_t block, float* out) {
  const __m256 magnitudes = _mm256_loadu_ps(kE2M1Values);  // codes 0-7
  const __m128i low4 = _mm_set1_epi8(0x0F);
  const __m256i sign_bit = _mm256_set1_epi32(0x8);
  for (int64_t i = 0; i < n; i += 16) {
    const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(packed + i / 2));
    const __m128i lo = _mm_and_si128(bytes, low4);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), low4);
    const __m128i codes = _mm_unpacklo_epi8(lo, hi);  // 16 codes in element order
    const __m256 scale = _mm256_set1_ps(scales[i / block]);
    for (int half = 0; half < 2; ++half) {
      const __m256i c = _mm256_cvtepu8_epi32(half == 0 ? codes : _mm_srli_si128(codes, 8));
      const __m256 mag = _mm256_permutevar8x32_ps(magnitudes, c);  // uses the low 3 bits
      const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(c, sign_bit), 28);
      const __m256 v = _mm256_castsi256_ps(_mm256_or_si256(_mm256_castps_si256(mag), sign));
      _mm256_storeu_ps(out + i + 8 * half, _mm256_mul_ps(v, scale));
    }
  }
}

FP4SERVE_AVX2 float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

template <int R>
FP4SERVE_AVX2 void dot_rows(const float* w, int64_t n, const float* const* x, float* acc) {
  __m256 a[R], b[R];
  for (int r = 0; r < R; ++r) a[r] = b[r] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 w0 = _mm256_loadu_ps(w + i), w1 = _mm256_loadu_ps(w + i + 8);
    for (int r = 0; r < R; ++r) {
      a[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[r] + i), a[r]);
      b[r] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[r] + i + 8), b[r]);
    }
  }
  float tail[R] = {};
  for (; i < n; ++i)
    for (int r = 0; r < R; ++r) tail[r] += w[i] * x[r][i];
  for (int r = 0; r < R; ++r) acc[r] += hsum(_mm256_add_ps(a[r], b[r])) + tail[r];
}

FP4SERVE_AVX2 void dot(const float* w, int64_t n, const float* const* x, int rows, float* acc) {
  switch (rows) {
    case 1: dot_rows<1>(w, n, x, acc); break;
    case 2: dot_rows<2>(w, n, x, acc); break;
    case 3: dot_rows<3>(w, n, x, acc); break;
    default: dot_rows<4>(w, n, x, acc); break;
  }
}

FP4SERVE_AVX2 void axpy(float a, const float* x, int64_t n, float* y) {
  const __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

template <int R>
FP4SERVE_AVX2 void dot_fp8_tile(const uint8_t* w, int64_t K, const float* scales, const float* const* x, float* out) {
  // E4M3 bits moved into an IEEE half (value * 2^-8), converted exactly by F16C; see
  // the AVX-512 version.
  const __m128i mag_mask = _mm_set1_epi16(0x7F), sign_mask = _mm_set1_epi16(0x80);
  __m256 total[R];
  for (int r = 0; r < R; ++r) total[r] = _mm256_setzero_ps();
  int64_t k = 0;
  for (int64_t b = 0; k + 128 <= K; ++b, k += 128) {
    __m256 a0[R], a1[R];
    for (int r = 0; r < R; ++r) a0[r] = a1[r] = _mm256_setzero_ps();
    for (int64_t i = 0; i < 128; i += 16) {
      for (int h = 0; h < 2; ++h) {
        const __m128i v = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w + k + i + 8 * h)));
        const __m128i half = _mm_or_si128(_mm_slli_epi16(_mm_and_si128(v, mag_mask), 7), _mm_slli_epi16(_mm_and_si128(v, sign_mask), 8));
        const __m256 f = _mm256_cvtph_ps(half);
        for (int r = 0; r < R; ++r) {
          if (h == 0) a0[r] = _mm256_fmadd_ps(f, _mm256_loadu_ps(x[r] + k + i), a0[r]);
          else a1[r] = _mm256_fmadd_ps(f, _mm256_loadu_ps(x[r] + k + i + 8), a1[r]);
        }
      }
    }
    const __m256 scale = _mm256_set1_ps(scales[b] * 256.0f);
    for (int r = 0; r < R; ++r) total[r] = _mm256_fmadd_ps(_mm256_add_ps(a0[r], a1[r]), scale, total[r]);
  }
  float tail[R] = {};
  if (k < K) {
    const float* table = kE4M3Values.data();
    for (int64_t i = k; i < K; ++i)
      for (int r = 0; r < R; ++r) tail[r] += table[w[i]] * x[r][i];
    for (int r = 0; r < R; ++r) tail[r] *= scales[k / 128];
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(total[r]) + tail[r];
}

FP4SERVE_AVX2 void dot_fp8_rows(const uint8_t* w, int64_t K, const float* scales, const float* const* x, int rows, float* out) {
  FP4SERVE_DISPATCH_ROWS(dot_fp8_tile, rows, w, K, scales, x, out)
}

// 16 codes at a time decoded into a buffer, then the buffer against every row.
FP4SERVE_AVX2 void dot_fp4_rows(const uint8_t* packed, int64_t K, const float* scales, int64_t block, const float* const* x,
                                int rows, float* out) {
  float buf[32];
  float total[kMaxDotRows] = {};
  for (int64_t k = 0; k < K; k += 16) {
    decode_fp4(packed + k / 2, 16, scales + k / block, block, buf);
    const float* xs[kMaxDotRows];
    for (int r = 0; r < rows; ++r) xs[r] = x[r] + k;
    float dots[kMaxDotRows] = {};
    dot(buf, 16, xs, rows, dots);
    for (int r = 0; r < rows; ++r) total[r] += dots[r];
  }
  for (int r = 0; r < rows; ++r) out[r] = total[r];
}

}  // namespace

const RowKernels& row_kernels_avx2() {
  static const RowKernels k{decode_bf16, decode_f16, dot, axpy, dot_fp8_rows, dot_fp4_rows};
  return k;
}

}  // namespace fp4serve::cpu
