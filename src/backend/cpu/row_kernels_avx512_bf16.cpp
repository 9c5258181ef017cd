// One-row BF16, FP8, MXFP4 and NVFP4 dots for processors with AVX512-BF16 and AVX512-VBMI (Sapphire
// Rapids, Zen 4): E4M3 bytes become bf16 through two 128-entry byte tables (vpermi2b),
// E2M1 nibbles through a 16-entry byte table (vpshufb), and vdpbf16ps multiplies them
// with bf16 activations; FP4 block scales multiply each block's sum in fp32.
// Exact like the other paths: every E4M3 and E2M1 value is a bf16 value and bf16 x bf16
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
// The FP8 kernel prefetches into L2 only (prefetcht1): its activations are 2 bytes per
// weight and, for long rows (wo_b: K = 8192, 16 KB of bf16), stay in L1 only if the
// weight stream does not pass through it (bench/cpu_linear_bench: 18 -> 21.5 GB/s on that
// shape, other shapes the same or faster, one thread of the 2-vCPU EPYC VM).
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
        _mm_prefetch(reinterpret_cast<const char*>(w[i] + c) + kPrefetchBytes, _MM_HINT_T1);
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

// Per 128 codes (64 packed bytes: 4 blocks of 32, block b in 128-bit lane b) the kernel
// forms four vectors of 32 words: [low nibbles of bytes 0-7 | of bytes 8-15 | high
// nibbles of bytes 0-7 | of bytes 8-15], each lane b holding block b's 8 codes (unpacklo /
// unpackhi within lanes); x is laid out so. Code 2j of a block is byte j's low nibble.
void prepare_fp4_x(const float* x, int64_t K, uint16_t* out) {
  for (int64_t g = 0; g < K; g += 128)
    for (int64_t q = 0; q < 4; ++q)
      for (int64_t b = 0; b < 4; ++b)
        for (int64_t j = 0; j < 8; ++j) *out++ = encode_bf16(x[g + 32 * b + (q & 1) * 16 + 2 * j + (q >> 1)]);
}

// Where prepare_fp4_x put code `c` (0..127) of a 128-code group.
inline int64_t fp4_x_slot(int64_t c) {
  const int64_t b = c / 32, byte = (c % 32) / 2, nibble = c % 2;
  return 32 * (nibble * 2 + byte / 8) + 8 * b + byte % 8;
}

// E2M1 values as bf16, split into low and high bytes for vpshufb (16 entries, repeated in
// every 128-bit lane), and the fp32 lane -> scale index maps of the two FP4 kernels.
struct E2m1Tables {
  alignas(64) uint8_t low[64];
  alignas(64) uint8_t high[64];
  alignas(64) uint32_t mx_block[16];   // MXFP4: lane group b (4 floats) -> block b
  alignas(64) uint32_t nv_even[16];    // NVFP4: lane group b -> block 2b
  alignas(64) uint32_t nv_odd[16];     //        -> block 2b + 1
};

const E2m1Tables& e2m1_tables() {
  static const E2m1Tables t = [] {
    E2m1Tables x{};
    for (int i = 0; i < 64; ++i) {
      const uint16_t v = encode_bf16(kE2M1Values[i % 16]);
      x.low[i] = static_cast<uint8_t>(v & 0xFF);
      x.high[i] = static_cast<uint8_t>(v >> 8);
    }
    for (int i = 0; i < 16; ++i) {
      x.mx_block[i] = static_cast<uint32_t>(i / 4);
      x.nv_even[i] = static_cast<uint32_t>(2 * (i / 4));
      x.nv_odd[i] = static_cast<uint32_t>(2 * (i / 4) + 1);
    }
    return x;
  }();
  return t;
}

// 64 packed bytes (128 codes) -> the four bf16 word vectors of prepare_fp4_x's order.
FP4SERVE_AVX512_BF16 inline void decode_e2m1_group(const uint8_t* packed, __m512i table_low, __m512i table_high, __m512i* w) {
  const __m512i nibble = _mm512_set1_epi8(0x0F);
  const __m512i bytes = _mm512_loadu_si512(packed);
  const __m512i lo = _mm512_and_si512(bytes, nibble);
  const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(bytes, 4), nibble);
  const __m512i lo_low = _mm512_shuffle_epi8(table_low, lo), lo_high = _mm512_shuffle_epi8(table_high, lo);
  const __m512i hi_low = _mm512_shuffle_epi8(table_low, hi), hi_high = _mm512_shuffle_epi8(table_high, hi);
  w[0] = _mm512_unpacklo_epi8(lo_low, lo_high);
  w[1] = _mm512_unpackhi_epi8(lo_low, lo_high);
  w[2] = _mm512_unpacklo_epi8(hi_low, hi_high);
  w[3] = _mm512_unpackhi_epi8(hi_low, hi_high);
}

// Whether none of the 4 bytes is 0 or 255 (E8M0 2^-127, a denormal float, and NaN).
inline bool e8m0_normal(uint32_t four) {
  auto has_zero_byte = [](uint32_t v) { return ((v - 0x01010101u) & ~v & 0x80808080u) != 0; };
  return !has_zero_byte(four) && !has_zero_byte(~four);
}

// The codes go through one fixed E2M1 table (vpshufb); a 64-byte group is 4 blocks of 32,
// block b in 128-bit lane b, so one chain of four vdpbf16ps leaves block b's exact-product
// sum in floats 4b..4b+3, which one fused multiply-add scales by 2^(k-127) (the E8M0 byte
// moved into a float's exponent field) into the row's accumulator. Groups with a scale
// byte of 0 or 255 take a scalar path.
template <int NW, int R>
FP4SERVE_AVX512_BF16 void dot_mxfp4_tile_prepared(const uint8_t* const* packed, int64_t K, const uint8_t* const* e8m0,
                                                  const uint16_t* const* xp, float* const* out) {
  const E2m1Tables& t = e2m1_tables();
  const __m512i table_low = _mm512_load_si512(t.low), table_high = _mm512_load_si512(t.high);
  const __m512i block_of_lane = _mm512_load_si512(t.mx_block);
  __m512 acc[NW][R];
  float outside[NW][R] = {};
  for (int i = 0; i < NW; ++i)
    for (int r = 0; r < R; ++r) acc[i][r] = _mm512_setzero_ps();
  for (int64_t g = 0; g < K; g += 128) {
    __m512i w[NW][4];
    __m512 scale[NW];
    bool in_range[NW];
#pragma GCC unroll 2
    for (int i = 0; i < NW; ++i) {
      uint32_t four = 0;
      std::memcpy(&four, e8m0[i] + g / 32, 4);
      in_range[i] = e8m0_normal(four);
      if (!in_range[i]) {
        for (int r = 0; r < R; ++r)
          for (int64_t b = 0; b < 4; ++b) {
            float s = 0.0f;
            for (int64_t c = 32 * b; c < 32 * b + 32; ++c) {
              const uint8_t byte = packed[i][(g + c) / 2];
              s += kE2M1Values[c % 2 ? byte >> 4 : byte & 0xF] * decode_bf16(xp[r][g + fp4_x_slot(c)]);
            }
            outside[i][r] += s * decode_e8m0(e8m0[i][g / 32 + b]);
          }
        continue;
      }
      _mm_prefetch(reinterpret_cast<const char*>(packed[i] + g / 2) + kPrefetchBytes, _MM_HINT_T0);
      const __m512i k = _mm512_permutexvar_epi32(block_of_lane, _mm512_cvtepu8_epi32(_mm_cvtsi32_si128(static_cast<int>(four))));
      scale[i] = _mm512_castsi512_ps(_mm512_slli_epi32(k, 23));
      decode_e2m1_group(packed[i] + g / 2, table_low, table_high, w[i]);
    }
    // Unrolled so that the accumulators and weight vectors stay in registers.
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const uint16_t* x = xp[r] + g;
      const __m512i x0 = _mm512_loadu_si512(x), x1 = _mm512_loadu_si512(x + 32);
      const __m512i x2 = _mm512_loadu_si512(x + 64), x3 = _mm512_loadu_si512(x + 96);
#pragma GCC unroll 2
      for (int i = 0; i < NW; ++i) {
        if (!in_range[i]) continue;
        __m512 sum = _mm512_dpbf16_ps(_mm512_setzero_ps(), (__m512bh)w[i][0], (__m512bh)x0);
        sum = _mm512_dpbf16_ps(sum, (__m512bh)w[i][1], (__m512bh)x1);
        sum = _mm512_dpbf16_ps(sum, (__m512bh)w[i][2], (__m512bh)x2);
        sum = _mm512_dpbf16_ps(sum, (__m512bh)w[i][3], (__m512bh)x3);
        acc[i][r] = _mm512_fmadd_ps(sum, scale[i], acc[i][r]);
      }
    }
  }
  for (int i = 0; i < NW; ++i)
    for (int r = 0; r < R; ++r) out[i][r] = _mm512_reduce_add_ps(acc[i][r]) + outside[i][r];
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

// 8 E4M3 bytes -> their values * 2^-8 in the low 8 floats (through IEEE half: exact,
// subnormals included; see the avx512 level).
FP4SERVE_AVX512_BF16 inline __m512 e4m3_over_256(const uint8_t* s) {
  const __m128i b = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s)));
  const __m128i mag = _mm_slli_epi16(_mm_and_si128(b, _mm_set1_epi16(0x7F)), 7);
  const __m128i sign = _mm_slli_epi16(_mm_and_si128(b, _mm_set1_epi16(0x80)), 8);
  return _mm512_cvtph_ps(_mm256_zextsi128_si256(_mm_or_si128(mag, sign)));
}

// NVFP4 the same way as MXFP4, with E4M3 block scales (decoded in fp32) and blocks of 16: a
// 64-byte group holds 8 blocks, lane b's bytes 0-7 block 2b and bytes 8-15 block 2b+1, so
// the first and third word vectors belong to the even blocks, the second and fourth to the
// odd ones, and one vdpbf16ps pair per parity gives the 8 blocks' sums in 4-float groups.
template <int R>
FP4SERVE_AVX512_BF16 void dot_nvfp4_tile_prepared(const uint8_t* packed, int64_t K, const uint8_t* e4m3, const uint16_t* const* xp,
                                                  float* out) {
  const E2m1Tables& t = e2m1_tables();
  const __m512i table_low = _mm512_load_si512(t.low), table_high = _mm512_load_si512(t.high);
  const __m512i even = _mm512_load_si512(t.nv_even), odd = _mm512_load_si512(t.nv_odd);
  __m512 acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t g = 0; g < K; g += 128) {
    _mm_prefetch(reinterpret_cast<const char*>(packed + g / 2) + kPrefetchBytes, _MM_HINT_T0);
    const __m512 scales = e4m3_over_256(e4m3 + g / 16);
    const __m512 scale_even = _mm512_permutexvar_ps(even, scales), scale_odd = _mm512_permutexvar_ps(odd, scales);
    __m512i w[4];
    decode_e2m1_group(packed + g / 2, table_low, table_high, w);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const uint16_t* x = xp[r] + g;
      const __m512 sum_even = _mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_setzero_ps(), (__m512bh)w[0], (__m512bh)_mm512_loadu_si512(x)),
                                               (__m512bh)w[2], (__m512bh)_mm512_loadu_si512(x + 64));
      const __m512 sum_odd = _mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_setzero_ps(), (__m512bh)w[1], (__m512bh)_mm512_loadu_si512(x + 32)),
                                              (__m512bh)w[3], (__m512bh)_mm512_loadu_si512(x + 96));
      acc[r][0] = _mm512_fmadd_ps(sum_even, scale_even, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(sum_odd, scale_odd, acc[r][1]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1])) * 256.0f;
}

FP4SERVE_AVX512_BF16 void dot_nvfp4_rows_prepared(const uint8_t* packed, int64_t K, const uint8_t* e4m3, const uint16_t* const* xp,
                                                  int rows, float* out) {
  FP4SERVE_DISPATCH_ROWS(dot_nvfp4_tile_prepared, rows, packed, K, e4m3, xp, out)
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
    r.dot_nvfp4_rows_prepared = dot_nvfp4_rows_prepared;
    r.prepare_bf16_x = prepare_bf16_x;
    r.dot_bf16_rows_prepared = dot_bf16_rows_prepared;
    return r;
  }();
  return k;
}

}  // namespace fp4serve::cpu
