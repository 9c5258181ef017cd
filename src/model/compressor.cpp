#include "model/compressor.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/activation_quant.h"
#include "backend/cpu/hadamard.h"
#include "formats/number_formats.h"
#include "model/norms.h"
#include "model/parallel.h"

namespace fp4serve {

void CompressorState::reset(const CompressorWeights& w, int64_t reserve_entries) {
  const size_t cells = static_cast<size_t>(w.coff() * w.ratio * w.coff() * w.dim);
  kv.assign(cells, 0.0f);
  score.assign(cells, -INFINITY);
  entries.clear();
  entries.reserve(static_cast<size_t>(reserve_entries * w.dim));
  count = 0;
}

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

bool compressor_ingest(const CompressorContext& ctx, CompressorState& state, int64_t position, const float* a, const float* z) {
  const CompressorWeights& w = *ctx.weights;
  const int64_t r = w.ratio, d = w.dim, width = w.coff() * d, slot = position % r;
  const float* ape = w.ape.data() + slot * width;
  const int64_t row = w.overlap ? r + slot : slot;
  std::memcpy(state.kv.data() + row * width, a, static_cast<size_t>(width) * sizeof(float));
  float* zrow = state.score.data() + row * width;
  for (int64_t f = 0; f < width; ++f) zrow[f] = z[f] + ape[f];
  if ((position + 1) % r != 0) return false;

  const size_t at = state.entries.size();
  state.entries.resize(at + static_cast<size_t>(d));
  float* entry = state.entries.data() + at;
  if (w.overlap) {
    // Candidates in the reference's order: previous window's first half, then this window's second half.
    const float* kv = state.kv.data();
    const float* score = state.score.data();
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
    std::memcpy(state.kv.data(), state.kv.data() + r * width, static_cast<size_t>(r * width) * sizeof(float));
    std::memcpy(state.score.data(), state.score.data() + r * width, static_cast<size_t>(r * width) * sizeof(float));
  } else {
    softmax_pool(state.kv.data(), state.score.data(), r, width, d, entry);
  }

  for (int64_t f = 0; f < d; ++f) entry[f] = round_bf16(entry[f]);
  rms_norm(entry, w.norm.data(), d, ctx.norm_eps, entry);
  ctx.rope->apply(entry + d - ctx.rope_dim, position + 1 - r, false);
  if (ctx.qat_simulation) {
    if (ctx.kind == CompressorKind::kIndexer) {
      cpu::hadamard_rotate(entry, d);
      cpu::fp4_quantize_dequantize(entry, d, 32, entry);
    } else {
      cpu::fp8_quantize_dequantize(entry, d - ctx.rope_dim, 64, entry);
    }
    for (int64_t f = 0; f < d; ++f) entry[f] = round_bf16(entry[f]);
  }
  ++state.count;
  return true;
}

}  // namespace fp4serve
