#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "backend/cpu/peak_flops.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

namespace fp4serve::cpu {
namespace {

// Independent accumulators: enough to cover the instruction's latency times its
// throughput (4-5 cycles x 2 per cycle on current cores).
constexpr int kChains = 12;
constexpr int64_t kIterations = 1 << 20;

// Each returns the FLOPs it did; the sum goes to a sink so nothing is optimized away.
__attribute__((target("avx512f,avx512bf16"))) double loop_dpbf16(float* sink) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_setzero_ps();
  const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3F80);  // 1.0
  const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3580);  // 2^-20
  for (int64_t i = 0; i < kIterations; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
  __m512 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm512_add_ps(s, acc[c]);
  *sink += _mm512_reduce_add_ps(s);
  return 64.0 * kChains * static_cast<double>(kIterations);  // 16 lanes x 2 pairs x (mul + add)
}

__attribute__((target("avx512f"))) double loop_fma512(float* sink) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_setzero_ps();
  const __m512 a = _mm512_set1_ps(1.0f), b = _mm512_set1_ps(0x1p-20f);
  for (int64_t i = 0; i < kIterations; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(a, b, acc[c]);
  __m512 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm512_add_ps(s, acc[c]);
  *sink += _mm512_reduce_add_ps(s);
  return 32.0 * kChains * static_cast<double>(kIterations);
}

__attribute__((target("avx2,fma"))) double loop_fma256(float* sink) {
  __m256 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_setzero_ps();
  const __m256 a = _mm256_set1_ps(1.0f), b = _mm256_set1_ps(0x1p-20f);
  for (int64_t i = 0; i < kIterations; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(a, b, acc[c]);
  alignas(32) float lanes[8];
  __m256 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm256_add_ps(s, acc[c]);
  _mm256_store_ps(lanes, s);
  for (float v : lanes) *sink += v;
  return 16.0 * kChains * static_cast<double>(kIterations);
}

double loop_sse(float* sink) {
  __m128 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm_setzero_ps();
  const __m128 a = _mm_set1_ps(1.0f), b = _mm_set1_ps(0x1p-20f);
  for (int64_t i = 0; i < kIterations; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm_add_ps(acc[c], _mm_mul_ps(a, b));
  alignas(16) float lanes[4];
  __m128 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm_add_ps(s, acc[c]);
  _mm_store_ps(lanes, s);
  for (float v : lanes) *sink += v;
  return 8.0 * kChains * static_cast<double>(kIterations);
}

}  // namespace

PeakFlops measure_peak_flops(CpuIsa isa, ThreadPool& pool) {
  PeakFlops out;
  double (*loop)(float*) = loop_sse;
  out.instruction = "mulps + addps xmm";
  switch (isa) {
    case CpuIsa::kAvx512Bf16: loop = loop_dpbf16; out.instruction = "vdpbf16ps zmm"; break;
    case CpuIsa::kAvx512: loop = loop_fma512; out.instruction = "vfmadd231ps zmm"; break;
    case CpuIsa::kAvx2: loop = loop_fma256; out.instruction = "vfmadd231ps ymm"; break;
    case CpuIsa::kScalar: break;
  }
  const int threads = pool.size();
  std::vector<float> sinks(static_cast<size_t>(threads) * 16, 0.0f);  // a cache line each
  std::atomic<double> flops{0};
  for (int pass = 0; pass < 3; ++pass) {
    flops = 0;
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(threads, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const double f = loop(&sinks[static_cast<size_t>(t) * 16]);
        double seen = flops.load();
        while (!flops.compare_exchange_weak(seen, seen + f)) {
        }
      }
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    out.flops_per_second = std::max(out.flops_per_second, flops.load() / s);
  }
  volatile float sink = 0;
  for (float v : sinks) sink = sink + v;
  return out;
}

}  // namespace fp4serve::cpu
