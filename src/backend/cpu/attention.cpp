#include "backend/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/activation_quant.h"
#include "backend/cpu/compressor.h"
#include "backend/cpu/hadamard.h"
#include "backend/cpu/indexer.h"
#include "backend/cpu/norms.h"
#include "formats/number_formats.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/rope.h"
#include "backend/cpu/row_kernels.h"
#include "backend/cpu/scratch.h"
#include "base/error.h"

namespace fp4serve::cpu {
namespace {

// o_h = sum_j bf16(exp(s_j - m)) kv_j / (sum_j exp(s_j - m) + exp(sink_h - m)) for every head,
// s_j = scale * q_h . kv_j over the key set (K = V), then o_h's RoPE undone at the query's
// angles (cos, sin). Heads run in parallel; scores [heads, keys] and acc [heads, hd] are
// the caller's scratch.
void attend(const float* q, int64_t heads, int64_t hd, const std::vector<const float*>& keys, const float* sink, float scale,
            const Rope& rope, const float* cos, const float* sin, float* scores, float* acc, float* o) {
  const RowKernels& kern = row_kernels(active_isa());
  const int64_t n = static_cast<int64_t>(keys.size()), rd = rope.dim();
  parallel_units(heads, heads * n * hd * 4, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; ++h) {
      const float* qh = q + h * hd;
      float* s = scores + h * n;
      float* a = acc + h * hd;
      for (int64_t j = 0; j < n; j += kMaxDotRows) {
        const int rows = static_cast<int>(std::min<int64_t>(kMaxDotRows, n - j));
        float dots[kMaxDotRows] = {};
        kern.dot(qh, hd, keys.data() + j, rows, dots);
        for (int r = 0; r < rows; ++r) s[j + r] = dots[r] * scale;
      }
      float m = -INFINITY;
      for (int64_t j = 0; j < n; ++j) m = std::max(m, s[j]);
      float den = 0.0f;
      std::fill(a, a + hd, 0.0f);
      for (int64_t j = 0; j < n; ++j) {
        const float p = std::exp(s[j] - m);
        den += p;
        kern.axpy(round_bf16(p), keys[j], hd, a);
      }
      den += std::exp(sink[h] - m);
      float* oh = o + h * hd;
      for (int64_t i = 0; i < hd; ++i) oh[i] = round_bf16(a[i] / den);
      rope.rotate(oh + hd - rd, cos, sin, true);
    }
  });
}

}  // namespace

void attention_heads(const AttentionHeadsParams& p) {
  const int64_t H = p.heads, hd = p.head_dim, rd = p.rope_dim, rows = p.rows;
  const int64_t nih = p.index_heads, ihd = p.index_head_dim;
  const Rope rope(p.rope_freqs, rd);
  // Per row: the H query heads, the K=V head (with the indexer weights' scale), the
  // indexer's query heads; every unit independent. Each unit computes its row's angles
  // (a few dozen sin/cos) rather than sharing a table: the results are the same values.
  const int64_t units = H + 1 + nih;
  const float weight_scale =
      nih > 0 ? static_cast<float>(std::pow(static_cast<double>(ihd), -0.5) * std::pow(static_cast<double>(nih), -0.5)) : 0.0f;
  constexpr int64_t kMaxHalf = 256;
  FP4SERVE_CHECK(rd / 2 <= kMaxHalf, "rope_head_dim {} above the {} supported", rd, 2 * kMaxHalf);
  parallel_units(rows * units, rows * (H * hd * 8 + nih * ihd * 16), [&](int64_t u0, int64_t u1) {
    float c_t[kMaxHalf], s_t[kMaxHalf];
    int64_t angles_of = -1;
    for (int64_t unit = u0; unit < u1; ++unit) {
      const int64_t t = unit / units, h = unit % units;
      if (t != angles_of) {
        rope.angles(p.positions[t], c_t, s_t);
        angles_of = t;
      }
      if (h < H) {
        float* qh = p.q + (t * H + h) * hd;
        head_rms_norm_bf16(qh, hd, p.norm_eps);
        rope.rotate(qh + hd - rd, c_t, s_t, false);
      } else if (h == H) {
        float* k = p.kv + t * hd;
        rms_norm(k, p.kv_norm, hd, p.norm_eps, k);
        rope.rotate(k + hd - rd, c_t, s_t, false);
        if (p.qat_simulation) fp8_quantize_dequantize(k, hd - rd, 64, k);
        for (int64_t i = 0; i < nih; ++i) p.index_weights[t * nih + i] = round_bf16(p.index_weights[t * nih + i] * weight_scale);
      } else {
        float* v = p.index_q + (t * nih + (h - H - 1)) * ihd;
        rope.rotate(v + ihd - rd, c_t, s_t, false);
        if (p.qat_simulation) {
          hadamard_rotate(v, ihd);
          fp4_quantize_dequantize(v, ihd, 32, v);
        }
      }
    }
  });
}

void attention_sequences(const AttentionSequencesParams& p, const StepRows& rows, AttentionScratch& sc) {
  const int64_t H = p.heads, hd = p.head_dim, rd = p.rope_dim, W = p.window;
  const Rope rope(p.rope_freqs, rd);
  const CompressorParams* comp = p.compressor.ratio > 0 ? &p.compressor : nullptr;
  const bool indexed = p.index_compressor.ratio > 0;
  const int64_t nih = p.index_heads, ihd = p.index_head_dim;
  const CompressorContext main_ctx{comp, rope, p.norm_eps, p.qat_simulation, CompressorKind::kMain};
  const CompressorContext index_ctx{&p.index_compressor, rope, p.norm_eps, p.qat_simulation, CompressorKind::kIndexer};

  // Grown to what the state can hold, once: decoding then never allocates.
  const int64_t entries = indexed ? std::min(p.index_topk, p.compressor.state.capacity) : (comp ? comp->state.capacity : 0);
  const int64_t max_keys = W + entries;
  if (static_cast<int64_t>(sc.keys.capacity()) < max_keys) sc.keys.reserve(static_cast<size_t>(max_keys));
  float* attn_scores = grow_scratch(sc.attn_scores, H * max_keys);
  float* attn_acc = grow_scratch(sc.attn_acc, H * hd);
  float* cos = grow_scratch(sc.cos, rd / 2);
  float* sin = grow_scratch(sc.sin, rd / 2);
  float* scores = nullptr;
  if (indexed) {
    scores = grow_scratch(sc.scores, p.index_compressor.state.capacity);
    if (static_cast<int64_t>(sc.selected.capacity()) < p.index_compressor.state.capacity)
      sc.selected.reserve(static_cast<size_t>(p.index_compressor.state.capacity));
  }

    const int64_t comp_width = comp ? (comp->overlap ? 2 : 1) * comp->dim : 0;
  const int64_t index_width = indexed ? (p.index_compressor.overlap ? 2 : 1) * p.index_compressor.dim : 0;
  for (const SequenceSlice& seq : rows.slices) {
    float* slot = seq.slot;
    float* ring = slot + p.window_offset;
    for (int64_t t = seq.row_begin; t < seq.row_end; ++t) {
      const int64_t pos = seq.start_position + (t - seq.row_begin);
      if (indexed) {
        compressor_ingest(index_ctx, slot, pos, p.index_compressor.a + t * index_width, p.index_compressor.z + t * index_width);
        const int64_t count = compressed_entries(p.index_compressor.ratio, pos);
        index_scores(p.index_q + t * nih * ihd, p.index_weights + t * nih, nih, ihd, slot + p.index_compressor.state.entries,
                     count, scores);
        top_k(scores, count, p.index_topk, sc.selected);
      }
      std::memcpy(ring + (pos % W) * hd, p.kv + t * hd, static_cast<size_t>(hd) * sizeof(float));
      if (comp) compressor_ingest(main_ctx, slot, pos, comp->a + t * comp_width, comp->z + t * comp_width);

      sc.keys.clear();
      for (int64_t k = std::max<int64_t>(0, pos - W + 1); k <= pos; ++k) sc.keys.push_back(ring + (k % W) * hd);
      const float* comp_entries = comp ? slot + comp->state.entries : nullptr;
      if (indexed) {
        for (int32_t e : sc.selected) sc.keys.push_back(comp_entries + e * hd);
      } else if (comp) {
        const int64_t count = compressed_entries(comp->ratio, pos);
        for (int64_t e = 0; e < count; ++e) sc.keys.push_back(comp_entries + e * hd);
      }
      rope.angles(pos, cos, sin);
      attend(p.q + t * H * hd, H, hd, sc.keys, p.sink, p.softmax_scale, rope, cos, sin, attn_scores, attn_acc,
             p.out + t * H * hd);
    }
  }
}

void block_attention(const BlockAttentionParams& p, const StepRows& rows, AttentionScratch& sc) {
  const int64_t H = p.heads, hd = p.head_dim, rd = p.rope_dim, W = p.window;
  const Rope rope(p.rope_freqs, rd);
  int64_t max_keys = 0;
  for (const SequenceSlice& seq : rows.slices) max_keys = std::max(max_keys, W + seq.row_end - seq.row_begin);
  if (static_cast<int64_t>(sc.keys.capacity()) < max_keys) sc.keys.reserve(static_cast<size_t>(max_keys));
  float* attn_scores = grow_scratch(sc.attn_scores, H * max_keys);
  float* attn_acc = grow_scratch(sc.attn_acc, H * hd);
  float* cos = grow_scratch(sc.cos, rd / 2);
  float* sin = grow_scratch(sc.sin, rd / 2);
  for (const SequenceSlice& seq : rows.slices) {
    const float* ring = seq.slot + p.ring_offset;
    sc.keys.clear();
    for (int64_t k = std::max<int64_t>(0, seq.start_position - W); k < seq.start_position; ++k) sc.keys.push_back(ring + (k % W) * hd);
    for (int64_t t = seq.row_begin; t < seq.row_end; ++t) sc.keys.push_back(p.kv + t * hd);
    for (int64_t t = seq.row_begin; t < seq.row_end; ++t) {
      rope.angles(seq.start_position + (t - seq.row_begin), cos, sin);
      attend(p.q + t * H * hd, H, hd, sc.keys, p.sink, p.softmax_scale, rope, cos, sin, attn_scores, attn_acc, p.out + t * H * hd);
    }
  }
}

}  // namespace fp4serve::cpu
