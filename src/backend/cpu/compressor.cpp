#include "backend/cpu/compressor.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/activation_quant.h"
#include "backend/cpu/hadamard.h"
#include "backend/cpu/norms.h"
#include "formats/number_formats.h"
#include "backend/cpu/parallel.h"
#include "base/error.h"

namespace fp4serve::cpu {
namespace {

// Features of an entry pooled by one unit of work.
constexpr int64_t kFeaturesPerUnit = 64;

// fn(f0, f1) over blocks of the d features, in parallel when the pooling is large (the
// HCA compressors pool 128 positions per feature).
template <typename Fn>
void over_features(int64_t d, int64_t candidates, const Fn& fn) {
  const int64_t blocks = (d + kFeaturesPerUnit - 1) / kFeaturesPerUnit;
  parallel_units(blocks, d * candidates * 24, [&](int64_t b0, int64_t b1) { fn(b0 * kFeaturesPerUnit, std::min(d, b1 * kFeaturesPerUnit)); });
}

}  // namespace

void softmax_pool(const float* kv, const float* score, int64_t candidates, int64_t stride, int64_t d, float* out) {
  over_features(d, candidates, [&](int64_t f0, int64_t f1) {
    for (int64_t f = f0; f < f1; ++f) {
      float mx = -INFINITY;
      for (int64_t t = 0; t < candidates; ++t) mx = std::max(mx, score[t * stride + f]);
      float sum = 0.0f;
      for (int64_t t = 0; t < candidates; ++t) sum += std::exp(score[t * stride + f] - mx);
      float acc = 0.0f;
      for (int64_t t = 0; t < candidates; ++t) acc += kv[t * stride + f] * (std::exp(score[t * stride + f] - mx) / sum);
      out[f] = acc;
    }
  });
}

bool compressor_ingest(const CompressorContext& ctx, float* slot, int64_t position, const float* a, const float* z) {
  const CompressorParams& w = *ctx.params;
  const int64_t coff = w.overlap ? 2 : 1;
  const int64_t r = w.ratio, d = w.dim, width = coff * d, slot_row = position % r;
  float* kv_state = slot + w.state.kv;
  float* score_state = slot + w.state.score;
  const float* ape = w.ape + slot_row * width;
  const int64_t row = w.overlap ? r + slot_row : slot_row;
  std::memcpy(kv_state + row * width, a, static_cast<size_t>(width) * sizeof(float));
  float* zrow = score_state + row * width;
  for (int64_t f = 0; f < width; ++f) zrow[f] = z[f] + ape[f];
  if ((position + 1) % r != 0) return false;

  const int64_t index = compressed_entries(r, position) - 1;
  FP4SERVE_CHECK(index < w.state.capacity, "compressor: entry {} beyond the state's {} (position {} past the context)", index,
                 w.state.capacity, position);
  float* entry = slot + w.state.entries + index * d;
  if (w.overlap) {
    // Candidates in the reference's order: previous window's first half, then this window's second half.
    const float* kv = kv_state;
    const float* score = score_state;
    over_features(d, 2 * r, [&](int64_t f0, int64_t f1) {
      for (int64_t f = f0; f < f1; ++f) {
        float mx = -INFINITY;
        for (int64_t t = 0; t < r; ++t) mx = std::max(mx, score[t * width + f]);
        for (int64_t t = r; t < 2 * r; ++t) mx = std::max(mx, score[t * width + d + f]);
        float sum = 0.0f;
        for (int64_t t = 0; t < r; ++t) sum += std::exp(score[t * width + f] - mx);
        for (int64_t t = r; t < 2 * r; ++t) sum += std::exp(score[t * width + d + f] - mx);
        float acc = 0.0f;
        for (int64_t t = 0; t < r; ++t) acc += kv[t * width + f] * (std::exp(score[t * width + f] - mx) / sum);
        for (int64_t t = r; t < 2 * r; ++t) acc += kv[t * width + d + f] * (std::exp(score[t * width + d + f] - mx) / sum);
        entry[f] = acc;
      }
    });
    // The current window becomes the previous one.
    std::memcpy(kv_state, kv_state + r * width, static_cast<size_t>(r * width) * sizeof(float));
    std::memcpy(score_state, score_state + r * width, static_cast<size_t>(r * width) * sizeof(float));
  } else {
    softmax_pool(kv_state, score_state, r, width, d, entry);
  }

  for (int64_t f = 0; f < d; ++f) entry[f] = round_bf16(entry[f]);
  rms_norm(entry, w.norm, d, ctx.norm_eps, entry);
  const int64_t rd = ctx.rope.dim();
  ctx.rope.apply(entry + d - rd, position + 1 - r, false);
  if (ctx.qat_simulation) {
    if (ctx.kind == CompressorKind::kIndexer) {
      hadamard_rotate(entry, d);
      fp4_quantize_dequantize(entry, d, 32, entry);
    } else {
      fp8_quantize_dequantize(entry, d - rd, 64, entry);
    }
    for (int64_t f = 0; f < d; ++f) entry[f] = round_bf16(entry[f]);
  }
  return true;
}

}  // namespace fp4serve::cpu
