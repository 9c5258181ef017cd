// FP8 one-row dot for processors with AVX512-BF16 and AVX512-VBMI (Sapphire Rapids,
// Zen 4): E4M3 bytes become bf16 through two 128-entry byte tables (vpermi2b), and
// vdpbf16ps multiplies them with bf16 activations, 64 weights per few instructions.
// Exact like the other paths: every E4M3 value is a bf16 value and bf16 x bf16
// products are exact in fp32; activations must be bf16 values (checked by the caller).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <array>
#include <cstring>

#include "kernels/cpu/numeric_formats.h"
#include "kernels/cpu/row_kernels.h"

#define FP4SERVE_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vbmi")))

namespace fp4serve::cpu {
namespace {

// bf16 bit patterns of the 128 non-negative E4M3 codes, split into high and low bytes.
struct Fp8ToBf16Tables {
  alignas(64) uint8_t high[128];
  alignas(64) uint8_t low[128];
};

const Fp8ToBf16Tables& tables() {
  static const Fp8ToBf16Tables t = [] {
    Fp8ToBf16Tables x{};
    for (int m = 0; m < 128; ++m) {
      const uint16_t b = float_to_bf16(e4m3_to_float(static_cast<uint8_t>(m)));  // exact (NaN for 0x7F)
      x.high[m] = static_cast<uint8_t>(b >> 8);
      x.low[m] = static_cast<uint8_t>(b & 0xFF);
    }
    return x;
  }();
  return t;
}

// Within each 64-weight chunk the kernel forms words [0-7, 16-23, 32-39, 48-55] then
// [8-15, 24-31, 40-47, 56-63] (unpacklo/hi within 128-bit lanes); x is laid out so.
void prepare_fp8_x(const float* x, int64_t K, uint16_t* out) {
  for (int64_t c = 0; c < K; c += 64)
    for (int64_t half = 0; half < 2; ++half)
      for (int64_t lane = 0; lane < 4; ++lane)
        for (int64_t i = 0; i < 8; ++i) *out++ = float_to_bf16(x[c + lane * 16 + half * 8 + i]);
}

FP4SERVE_AVX512_BF16 float dot_fp8_row_prepared(const uint8_t* w, int64_t K, const float* scales, const uint16_t* xp) {
  const Fp8ToBf16Tables& t = tables();
  const __m512i hi0 = _mm512_load_si512(t.high), hi1 = _mm512_load_si512(t.high + 64);
  const __m512i lo0 = _mm512_load_si512(t.low), lo1 = _mm512_load_si512(t.low + 64);
  const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512 total = _mm512_setzero_ps();
  for (int64_t b = 0; b * 128 < K; ++b) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (int64_t c = b * 128; c < b * 128 + 128; c += 64) {
      const __m512i codes = _mm512_loadu_si512(w + c);
      // high byte | sign: imm 0xF8 = A | (B & C) with A = table byte, B = codes, C = 0x80
      const __m512i hi = _mm512_ternarylogic_epi32(_mm512_permutex2var_epi8(hi0, codes, hi1), codes, sign, 0xF8);
      const __m512i lo = _mm512_permutex2var_epi8(lo0, codes, lo1);
      const __m512i words_a = _mm512_unpacklo_epi8(lo, hi), words_b = _mm512_unpackhi_epi8(lo, hi);
      acc0 = _mm512_dpbf16_ps(acc0, (__m512bh)words_a, (__m512bh)_mm512_loadu_si512(xp + c));
      acc1 = _mm512_dpbf16_ps(acc1, (__m512bh)words_b, (__m512bh)_mm512_loadu_si512(xp + c + 32));
    }
    total = _mm512_fmadd_ps(_mm512_add_ps(acc0, acc1), _mm512_set1_ps(scales[b]), total);
  }
  return _mm512_reduce_add_ps(total);
}

}  // namespace

const RowKernels& row_kernels_avx512_bf16() {
  static const RowKernels k = [] {
    RowKernels r = row_kernels_avx512();
    r.prepare_fp8_x = prepare_fp8_x;
    r.dot_fp8_row_prepared = dot_fp8_row_prepared;
    return r;
  }();
  return k;
}

}  // namespace fp4serve::cpu
