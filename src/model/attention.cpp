#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "model/scratch.h"
#include "backend/cpu/activation_quant.h"
#include "backend/cpu/hadamard.h"
#include "backend/cpu/linear.h"
#include "formats/number_formats.h"
#include "backend/cpu/row_kernels.h"
#include "model/indexer.h"
#include "model/norms.h"
#include "model/parallel.h"

namespace fp4serve {
namespace {

using cpu::ActivationQuant;
using cpu::LinearJob;

ActivationQuant act_for(const Numerics& n, const LinearWeight* w) {
  return n.quantizes_input(w->encoding) ? ActivationQuant::kFP8Block128 : ActivationQuant::kNone;
}

LinearJob job(const LinearWeight* w, const float* x, int64_t rows, float* y, ActivationQuant act, bool round) {
  LinearJob j;
  j.weight = w;
  j.x = x;
  j.rows = rows;
  j.y = y;
  j.act = act;
  j.round_bf16 = round;
  return j;
}

// o_h = sum_j bf16(exp(s_j - m)) kv_j / (sum_j exp(s_j - m) + exp(sink_h - m)) for every head,
// s_j = scale * q_h . kv_j over the key set (K = V), then o_h's RoPE undone at the query's
// angles (cos, sin). Heads run in parallel; scores [heads, keys] and acc [heads, hd] are
// the caller's scratch.
void attend(const float* q, int64_t heads, int64_t hd, const std::vector<const float*>& keys, const float* sink, float scale,
            const RopeTable& rope, int64_t rd, const float* cos, const float* sin, float* scores, float* acc, float* o) {
  const cpu::RowKernels& kern = cpu::row_kernels(cpu::active_isa());
  const int64_t n = static_cast<int64_t>(keys.size());
  parallel_units(heads, heads * n * hd * 4, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; ++h) {
      const float* qh = q + h * hd;
      float* s = scores + h * n;
      float* a = acc + h * hd;
      for (int64_t j = 0; j < n; j += cpu::kMaxDotRows) {
        const int rows = static_cast<int>(std::min<int64_t>(cpu::kMaxDotRows, n - j));
        float dots[cpu::kMaxDotRows] = {};
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

void AttentionLayer::reset_state(AttentionState& state, int64_t reserve_tokens) const {
  state.window.assign(static_cast<size_t>(config->sliding_window * config->head_dim), 0.0f);
  if (weights->compressor) state.compressor.reset(*weights->compressor, reserve_tokens / weights->ratio + 1);
  if (weights->indexer) state.index_compressor.reset(weights->indexer->compressor, reserve_tokens / 4 + 1);
}

void AttentionLayer::reserve_scratch(AttentionScratch& sc, int64_t reserve_tokens) const {
  const ModelConfig& c = *config;
  int64_t entries = 0;  // compressed entries one query can see
  if (weights->indexer) entries = std::min(c.index_topk, reserve_tokens / weights->ratio + 1);
  else if (weights->compressor) entries = reserve_tokens / weights->ratio + 1;
  const int64_t keys = c.sliding_window + entries;
  sc.keys.reserve(static_cast<size_t>(keys));
  grow_scratch(sc.attn_scores, c.num_heads * keys);
  grow_scratch(sc.attn_acc, c.num_heads * c.head_dim);
  if (weights->indexer) {
    const int64_t index_entries = reserve_tokens / 4 + 1;
    grow_scratch(sc.scores, index_entries);
    sc.selected.reserve(static_cast<size_t>(index_entries));
  }
}

void AttentionLayer::forward(const float* x, int64_t rows, std::span<const RowSegment> segments, AttentionScratch& sc,
                             float* out) const {
  const ModelConfig& c = *config;
  const AttentionWeights& w = *weights;
  const Numerics& num = *numerics;
  const int64_t H = c.num_heads, hd = c.head_dim, rd = c.rope_head_dim, ql = c.q_lora_rank;
  const int64_t G = c.o_groups, R = c.o_lora_rank, W = c.sliding_window;
  const float eps = static_cast<float>(c.rms_norm_eps);

  int64_t* positions = grow_scratch(sc.positions, rows);
  for (const RowSegment& s : segments)
    for (int64_t t = s.row_begin; t < s.row_end; ++t) positions[t] = s.start_position + (t - s.row_begin);

  // Token-parallel projections.
  float* qa = grow_scratch(sc.qa, rows * ql);
  float* kv = grow_scratch(sc.kv, rows * hd);
  {
    const LinearJob jobs[] = {job(w.wq_a, x, rows, qa, act_for(num, w.wq_a), true),
                              job(w.wkv, x, rows, kv, act_for(num, w.wkv), true)};
    cpu::linear(jobs);
  }
  float* qr = grow_scratch(sc.qr, rows * ql);
  parallel_units(rows, rows * ql * 4, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) rms_norm(qa + t * ql, w.q_norm.data(), ql, eps, qr + t * ql);
  });
  float* q = grow_scratch(sc.q, rows * H * hd);
  const CompressorWeights* comp = w.compressor ? &*w.compressor : nullptr;
  const IndexerWeights* ix = w.indexer ? &*w.indexer : nullptr;
  const int64_t nih = c.index_n_heads, ihd = c.index_head_dim;
  float *comp_a = nullptr, *comp_z = nullptr, *qi = nullptr, *iw = nullptr, *index_a = nullptr, *index_z = nullptr;
  {
    std::vector<LinearJob>& jobs = sc.jobs;
    jobs.assign(1, job(w.wq_b, qr, rows, q, act_for(num, w.wq_b), true));
    if (comp) {
      comp_a = grow_scratch(sc.comp_a, rows * comp->coff() * hd);
      comp_z = grow_scratch(sc.comp_z, rows * comp->coff() * hd);
      jobs.push_back(job(comp->wkv, x, rows, comp_a, act_for(num, comp->wkv), false));
      jobs.push_back(job(comp->wgate, x, rows, comp_z, act_for(num, comp->wgate), false));
    }
    if (ix) {
      qi = grow_scratch(sc.qi, rows * nih * ihd);
      iw = grow_scratch(sc.index_weights, rows * nih);
      index_a = grow_scratch(sc.index_a, rows * 2 * ihd);
      index_z = grow_scratch(sc.index_z, rows * 2 * ihd);
      jobs.push_back(job(ix->wq_b, qr, rows, qi, act_for(num, ix->wq_b), true));
      jobs.push_back(job(ix->weights_proj, x, rows, iw, act_for(num, ix->weights_proj), true));
      jobs.push_back(job(ix->compressor.wkv, x, rows, index_a, act_for(num, ix->compressor.wkv), false));
      jobs.push_back(job(ix->compressor.wgate, x, rows, index_z, act_for(num, ix->compressor.wgate), false));
    }
    cpu::linear(jobs);
  }

  // One cos/sin set per row, shared by every head of q, kv, the indexer and the output.
  float* cos = grow_scratch(sc.rope_cos, rows * rd / 2);
  float* sin = grow_scratch(sc.rope_sin, rows * rd / 2);
  for (int64_t t = 0; t < rows; ++t) rope.angles(positions[t], cos + t * rd / 2, sin + t * rd / 2);
  // Per row: the H query heads, the K=V head (with the indexer weights' scale), the
  // indexer's query heads; every unit independent.
  const int64_t index_heads = ix ? nih : 0, units = H + 1 + index_heads;
  const float weight_scale =
      ix ? static_cast<float>(std::pow(static_cast<double>(ihd), -0.5) * std::pow(static_cast<double>(nih), -0.5)) : 0.0f;
  parallel_units(rows * units, rows * (H * hd * 8 + index_heads * ihd * 16), [&](int64_t u0, int64_t u1) {
    for (int64_t unit = u0; unit < u1; ++unit) {
      const int64_t t = unit / units, h = unit % units;
      const float* c_t = cos + t * rd / 2;
      const float* s_t = sin + t * rd / 2;
      if (h < H) {
        float* qh = q + (t * H + h) * hd;
        head_rms_norm_bf16(qh, hd, eps);
        rope.rotate(qh + hd - rd, c_t, s_t, false);
      } else if (h == H) {
        float* k = kv + t * hd;
        rms_norm(k, w.kv_norm.data(), hd, eps, k);
        rope.rotate(k + hd - rd, c_t, s_t, false);
        if (num.qat_simulation) cpu::fp8_quantize_dequantize(k, hd - rd, 64, k);
        for (int64_t i = 0; i < index_heads; ++i) iw[t * nih + i] = round_bf16(iw[t * nih + i] * weight_scale);
      } else {
        float* v = qi + (t * nih + (h - H - 1)) * ihd;
        rope.rotate(v + ihd - rd, c_t, s_t, false);
        if (num.qat_simulation) {
          cpu::hadamard_rotate(v, ihd);
          cpu::fp4_quantize_dequantize(v, ihd, 32, v);
        }
      }
    }
  });

  // The stateful walk, token by token within each sequence.
  const CompressorContext main_ctx{comp, &rope, rd, eps, num.qat_simulation, CompressorKind::kMain};
  const CompressorContext index_ctx{ix ? &ix->compressor : nullptr, &rope, rd, eps, num.qat_simulation, CompressorKind::kIndexer};
  const float scale = static_cast<float>(std::pow(static_cast<double>(hd), -0.5));
  float* o = grow_scratch(sc.o, rows * H * hd);
  for (const RowSegment& seg : segments) {
    AttentionState& st = *seg.state;
    for (int64_t t = seg.row_begin; t < seg.row_end; ++t) {
      const int64_t p = positions[t];
      if (ix) {
        compressor_ingest(index_ctx, st.index_compressor, p, index_a + t * 2 * ihd, index_z + t * 2 * ihd);
        const int64_t count = st.index_compressor.count;
        float* scores = grow_scratch(sc.scores, count);
        index_scores(qi + t * nih * ihd, iw + t * nih, nih, ihd, st.index_compressor.entries.data(), count, scores);
        top_k(scores, count, c.index_topk, sc.selected);
      }
      std::memcpy(st.window.data() + (p % W) * hd, kv + t * hd, static_cast<size_t>(hd) * sizeof(float));
      if (comp) compressor_ingest(main_ctx, st.compressor, p, comp_a + t * comp->coff() * hd, comp_z + t * comp->coff() * hd);

      sc.keys.clear();
      for (int64_t k = std::max<int64_t>(0, p - W + 1); k <= p; ++k) sc.keys.push_back(st.window.data() + (k % W) * hd);
      if (ix) {
        for (int32_t e : sc.selected) sc.keys.push_back(st.compressor.entries.data() + e * hd);
      } else if (comp) {
        for (int64_t e = 0; e < st.compressor.count; ++e) sc.keys.push_back(st.compressor.entries.data() + e * hd);
      }
      const int64_t n = static_cast<int64_t>(sc.keys.size());
      attend(q + t * H * hd, H, hd, sc.keys, w.attn_sink.data(), scale, rope, rd, cos + t * rd / 2, sin + t * rd / 2,
             grow_scratch(sc.attn_scores, H * n), grow_scratch(sc.attn_acc, H * hd), o + t * H * hd);
    }
  }

  // The grouped output projection.
  float* z = grow_scratch(sc.z, rows * G * R);
  {
    std::vector<LinearJob>& jobs = sc.jobs;
    jobs.clear();
    const int64_t group_in = H * hd / G;
    for (int64_t g = 0; g < G; ++g) {
      // wo_a runs as bf16 x bf16 in the reference (it dequantizes the weight), so no activation quantization.
      LinearJob j = job(w.wo_a, o + g * group_in, rows, z + g * R, ActivationQuant::kNone, true);
      j.x_stride = H * hd;
      j.y_stride = G * R;
      j.row_begin = g * R;
      j.row_end = (g + 1) * R;
      jobs.push_back(j);
    }
    cpu::linear(jobs);
  }
  cpu::linear(job(w.wo_b, z, rows, out, act_for(num, w.wo_b), true));
}

}  // namespace fp4serve
