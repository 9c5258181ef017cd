// One-row BF16, FP8 and MXFP4 dots for processors with AVX512-BF16 and AVX512-VBMI (Sapphire
// Rapids, Zen 4): E4M3 bytes become bf16 through two 128-entry byte tables (vpermi2b),
// E2M1 nibbles through a 32-word table (vpermw) scaled per block, and vdpbf16ps
// multiplies them with bf16 activations.
// Exact like the other paths: every E4M3 value is a bf16 value and bf16 x bf16
// products are exact in fp32; activations must be bf16 values (checked by the caller).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <array>
#include <cstring>

#include "formats/number_formats.h"
#include "backend/cpu/row_kernels.h"

#define FP4SERVE_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vbmi")))

namespace fp4serve::cpu {
namespace {

// Rows are short (a few KB) and the hardware prefetcher restarts at every 4 KB page, so
// the kernels ask for the weight bytes 4 KB ahead of use, into the next rows as well
// (4 KB measured faster than 1 KB with 16 threads on a 16-core Xeon, docs/PERFORMANCE.md).
constexpr int kPrefetchBytes = 4096;

// bf16 bit patterns of the 128 non-negative E4M3 codes, split into high and low bytes.
struct Fp8ToBf16Tables {
  alignas(64) uint8_t high[128];
  alignas(64) uint8_t low[128];
};

const Fp8ToBf16Tables& tables() {
  static const Fp8ToBf16Tables t = [] {
    Fp8ToBf16Tables x{};
    for (int m = 0; m < 128; ++m) {
      const uint16_t b = encode_bf16(decode_e4m3(static_cast<uint8_t>(m)));  // exact (NaN for 0x7F)
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
        for (int64_t i = 0; i < 8; ++i) *out++ = encode_bf16(x[c + lane * 16 + half * 8 + i]);
}

// NW weight rows (1 or 2) against R activation rows: each chunk of codes is decoded once
// per weight row, each activation load feeds all NW rows. Per (weight row, activation
// row) the operations are those of the one-row kernel, in its order.
template <int NW, int R>
FP4SERVE_AVX512_BF16 void dot_fp8_tile_prepared(const uint8_t* const* w, int64_t K, const float* const* scales,
                                                const uint16_t* const* xp, float* const* out) {
  const Fp8ToBf16Tables& t = tables();
  const __m512i hi0 = _mm512_load_si512(t.high), hi1 = _mm512_load_si512(t.high + 64);
  const __m512i lo0 = _mm512_load_si512(t.low), lo1 = _mm512_load_si512(t.low + 64);
  const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512 total[NW][R];
  for (int i = 0; i < NW; ++i)
    for (int r = 0; r < R; ++r) total[i][r] = _mm512_setzero_ps();
  for (int64_t b = 0; b * 128 < K; ++b) {
    __m512 acc0[NW][R], acc1[NW][R];
    for (int i = 0; i < NW; ++i)
      for (int r = 0; r < R; ++r) acc0[i][r] = acc1[i][r] = _mm512_setzero_ps();
    for (int64_t c = b * 128; c < b * 128 + 128; c += 64) {
      __m512i words_a[NW], words_b[NW];
      for (int i = 0; i < NW; ++i) {
        _mm_prefetch(reinterpret_cast<const char*>(w[i] + c) + kPrefetchBytes, _MM_HINT_T0);
        const __m512i codes = _mm512_loadu_si512(w[i] + c);
        // high byte | sign: imm 0xF8 = A | (B & C) with A = table byte, B = codes, C = 0x80
        const __m512i hi = _mm512_ternarylogic_epi32(_mm512_permutex2var_epi8(hi0, codes, hi1), codes, sign, 0xF8);
        const __m512i lo = _mm512_permutex2var_epi8(lo0, codes, lo1);
        words_a[i] = _mm512_unpacklo_epi8(lo, hi);
        words_b[i] = _mm512_unpackhi_epi8(lo, hi);
      }
      for (int r = 0; r < R; ++r) {
        const __m512i xa = _mm512_loadu_si512(xp[r] + c), xb = _mm512_loadu_si512(xp[r] + c + 32);
        for (int i = 0; i < NW; ++i) {
          acc0[i][r] = _mm512_dpbf16_ps(acc0[i][r], (__m512bh)words_a[i], (__m512bh)xa);
          acc1[i][r] = _mm512_dpbf16_ps(acc1[i][r], (__m512bh)words_b[i], (__m512bh)xb);
        }
      }
    }
    for (int i = 0; i < NW; ++i) {
      const __m512 scale = _mm512_set1_ps(scales[i][b]);
      for (int r = 0; r < R; ++r) total[i][r] = _mm512_fmadd_ps(_mm512_add_ps(acc0[i][r], acc1[i][r]), scale, total[i][r]);
    }
  }
  for (int i = 0; i < NW; ++i)
    for (int r = 0; r < R; ++r) out[i][r] = _mm512_reduce_add_ps(total[i][r]);
}

template <int R>
FP4SERVE_AVX512_BF16 void dot_fp8_tile1(const uint8_t* w, int64_t K, const float* scales, const uint16_t* const* xp, float* out) {
  dot_fp8_tile_prepared<1, R>(&w, K, &scales, xp, &out);
}

template <int R>
FP4SERVE_AVX512_BF16 void dot_fp8_tile2(const uint8_t* const* w, int64_t K, const float* const* scales, const uint16_t* const* xp,
                                        float* const* out) {
  dot_fp8_tile_prepared<2, R>(w, K, scales, xp, out);
}

FP4SERVE_AVX512_BF16 void dot_fp8_rows_prepared(const uint8_t* w, int64_t K, const float* scales, const uint16_t* const* xp,
                                                int rows, float* out) {
  FP4SERVE_DISPATCH_ROWS(dot_fp8_tile1, rows, w, K, scales, xp, out)
}

FP4SERVE_AVX512_BF16 void dot_fp8_rows_prepared_x2(const uint8_t* const* w, int64_t K, const float* const* scales,
                                                   const uint16_t* const* xp, int rows, float* const* out) {
  FP4SERVE_DISPATCH_ROWS(dot_fp8_tile2, rows, w, K, scales, xp, out)
}

// Per 32 elements the kernel forms [even k (16) | odd k (16)] from low / high nibbles.
void prepare_fp4_x(const float* x, int64_t K, uint16_t* out) {
  for (int64_t c = 0; c < K; c += 32)
    for (int64_t parity = 0; parity < 2; ++parity)
      for (int64_t i = 0; i < 16; ++i) *out++ = encode_bf16(x[c + 2 * i + parity]);
}

// E2M1 values as bf16, twice (vpermw indexes 32 words).
const uint16_t* e2m1_bf16_table() {
  alignas(64) static const std::array<uint16_t, 32> t = [] {
    std::array<uint16_t, 32> x{};
    for (int i = 0; i < 32; ++i) x[static_cast<size_t>(i)] = encode_bf16(kE2M1Values[i % 16]);
    return x;
  }();
  return t.data();
}

// Each block's E8M0 scale 2^k is added into the exponent field of the nonzero table
// entries (exact: E2M1 values times powers of two are bf16 values), so the whole row
// accumulates in one vdpbf16ps chain. Blocks whose k would leave the bf16 exponent
// range take the scalar path.
template <int NW, int R>
FP4SERVE_AVX512_BF16 void dot_mxfp4_tile_prepared(const uint8_t* const* packed, int64_t K, const uint8_t* const* e8m0,
                                                  const uint16_t* const* xp, float* const* out) {
  const __m512i base = _mm512_loadu_si512(e2m1_bf16_table());
  const __mmask32 nonzero = 0xFEFEFEFEu;  // every entry but codes 0 and 8 (+0 and -0)
  const __m256i low4 = _mm256_set1_epi16(0x0F);
  __m512 acc0[NW][R], acc1[NW][R];
  float outside[NW][R] = {};
  for (int i = 0; i < NW; ++i)
    for (int r = 0; r < R; ++r) acc0[i][r] = acc1[i][r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 32) {
    __m512i w[NW];
    bool in_range[NW];
    for (int i = 0; i < NW; ++i) {
      const int e = e8m0[i][k / 32];
      in_range[i] = e >= 2 && e <= 252;
      if (!in_range[i]) {
        for (int r = 0; r < R; ++r) {
          float s = 0.0f;
          for (int64_t j = 0; j < 16; ++j) {
            const uint8_t byte = packed[i][k / 2 + j];
            s += kE2M1Values[byte & 0xF] * decode_bf16(xp[r][k + j]) + kE2M1Values[byte >> 4] * decode_bf16(xp[r][k + 16 + j]);
          }
          outside[i][r] += s * decode_e8m0(static_cast<uint8_t>(e));
        }
        w[i] = _mm512_setzero_si512();
        continue;
      }
      if ((k & 127) == 0) _mm_prefetch(reinterpret_cast<const char*>(packed[i] + k / 2) + kPrefetchBytes, _MM_HINT_T0);
      const __m512i table = _mm512_mask_add_epi16(base, nonzero, base, _mm512_set1_epi16(static_cast<int16_t>((e - 127) * 128)));
      const __m256i bytes = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(packed[i] + k / 2)));
      const __m512i codes =
          _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(bytes, low4)), _mm256_srli_epi16(bytes, 4), 1);
      w[i] = _mm512_permutexvar_epi16(codes, table);
    }
    for (int r = 0; r < R; ++r) {
      const __m512i x = _mm512_loadu_si512(xp[r] + k);
      for (int i = 0; i < NW; ++i) {
        if (!in_range[i]) continue;
        if ((k / 32) % 2 == 0) acc0[i][r] = _mm512_dpbf16_ps(acc0[i][r], (__m512bh)w[i], (__m512bh)x);
        else acc1[i][r] = _mm512_dpbf16_ps(acc1[i][r], (__m512bh)w[i], (__m512bh)x);
      }
    }
  }
  for (int i = 0; i < NW; ++i)
    for (int r = 0; r < R; ++r) out[i][r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[i][r], acc1[i][r])) + outside[i][r];
}

template <int R>
FP4SERVE_AVX512_BF16 void dot_mxfp4_tile1(const uint8_t* packed, int64_t K, const uint8_t* e8m0, const uint16_t* const* xp,
                                          float* out) {
  dot_mxfp4_tile_prepared<1, R>(&packed, K, &e8m0, xp, &out);
}

template <int R>
FP4SERVE_AVX512_BF16 void dot_mxfp4_tile2(const uint8_t* const* packed, int64_t K, const uint8_t* const* e8m0,
                                          const uint16_t* const* xp, float* const* out) {
  dot_mxfp4_tile_prepared<2, R>(packed, K, e8m0, xp, out);
}

FP4SERVE_AVX512_BF16 void dot_mxfp4_rows_prepared(const uint8_t* packed, int64_t K, const uint8_t* e8m0,
                                                  const uint16_t* const* xp, int rows, float* out) {
  FP4SERVE_DISPATCH_ROWS(dot_mxfp4_tile1, rows, packed, K, e8m0, xp, out)
}

FP4SERVE_AVX512_BF16 void dot_mxfp4_rows_prepared_x2(const uint8_t* const* packed, int64_t K, const uint8_t* const* e8m0,
                                                     const uint16_t* const* xp, int rows, float* const* out) {
  FP4SERVE_DISPATCH_ROWS(dot_mxfp4_tile2, rows, packed, K, e8m0, xp, out)
}

void prepare_bf16_x(const float* x, int64_t K, uint16_t* out) {
  for (int64_t k = 0; k < K; ++k) out[k] = encode_bf16(x[k]);
}

template <int R>
FP4SERVE_AVX512_BF16 void dot_bf16_tile_prepared(const uint16_t* w, int64_t K, const uint16_t* const* xp, float* out) {
  __m512 acc0[R], acc1[R];
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 64 <= K; k += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(w + k) + kPrefetchBytes, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(w + k + 32) + kPrefetchBytes, _MM_HINT_T0);
    const __m512i w0 = _mm512_loadu_si512(w + k), w1 = _mm512_loadu_si512(w + k + 32);
    for (int r = 0; r < R; ++r) {
      acc0[r] = _mm512_dpbf16_ps(acc0[r], (__m512bh)w0, (__m512bh)_mm512_loadu_si512(xp[r] + k));
      acc1[r] = _mm512_dpbf16_ps(acc1[r], (__m512bh)w1, (__m512bh)_mm512_loadu_si512(xp[r] + k + 32));
    }
  }
  float tail[R] = {};
  for (; k < K; ++k)
    for (int r = 0; r < R; ++r) tail[r] += decode_bf16(w[k]) * decode_bf16(xp[r][k]);
  for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[r], acc1[r])) + tail[r];
}

FP4SERVE_AVX512_BF16 void dot_bf16_rows_prepared(const uint16_t* w, int64_t K, const uint16_t* const* xp, int rows, float* out) {
  FP4SERVE_DISPATCH_ROWS(dot_bf16_tile_prepared, rows, w, K, xp, out)
}

}  // namespace

const RowKernels& row_kernels_avx512_bf16() {
  static const RowKernels k = [] {
    RowKernels r = row_kernels_avx512();
    r.prepare_fp8_x = prepare_fp8_x;
    r.dot_fp8_rows_prepared = dot_fp8_rows_prepared;
    r.dot_fp8_rows_prepared_x2 = dot_fp8_rows_prepared_x2;
    r.prepare_fp4_x = prepare_fp4_x;
    r.dot_mxfp4_rows_prepared = dot_mxfp4_rows_prepared;
    r.dot_mxfp4_rows_prepared_x2 = dot_mxfp4_rows_prepared_x2;
    r.prepare_bf16_x = prepare_bf16_x;
    r.dot_bf16_rows_prepared = dot_bf16_rows_prepared;
    return r;
  }();
  return k;
}

}  // namespace fp4serve::cpu
