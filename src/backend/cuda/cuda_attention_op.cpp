// Backend::attention_heads and attention_sequences on the GPU. The stateful walk that the
// CPU makes token by token runs for every row of the step at once: the host lists the rows,
// runs and emitted compressor entries (all functions of positions), uploads those tables,
// and enqueues: index compressor, indexer top-k, main compressor, attention, ring update.
#ifdef FP4SERVE_HAVE_CUDA
#include <algorithm>
#include <cmath>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/ops/dspark_ops.h"
#include "base/error.h"

namespace fp4serve::cuda {
namespace {

ops::CompressorParams compressor_params(const CompressorParams& c, const AttentionSequencesParams& p, bool indexer) {
  ops::CompressorParams o;
  o.ratio = c.ratio;
  o.dim = c.dim;
  o.state = {c.state.kv, c.state.score, c.state.entries};
  o.overlap = c.overlap;
  o.indexer = indexer;
  o.ape = c.ape;
  o.norm = c.norm;
  o.freqs = p.rope_freqs;
  o.rd = p.rope_dim;
  o.eps = p.norm_eps;
  o.qat = p.qat_simulation;
  return o;
}

}  // namespace

void CudaBackend::attention_heads(const AttentionHeadsParams& p) {
  if (p.rows == 0) return;
  float* cos = work<float>(Work::kRopeCos, p.rows * p.rope_dim / 2);
  float* sin = work<float>(Work::kRopeSin, p.rows * p.rope_dim / 2);
  ops::rope_angles(stream_, p.rope_freqs, p.rope_dim, p.positions, p.rows, cos, sin);
  ops::AttentionPrep prep;
  prep.q = p.q;
  prep.heads = p.heads;
  prep.hd = p.head_dim;
  prep.rd = p.rope_dim;
  prep.kv = p.kv;
  prep.kv_norm = p.kv_norm;
  prep.index_q = p.index_heads > 0 ? p.index_q : nullptr;
  prep.index_heads = p.index_heads;
  prep.index_hd = p.index_head_dim;
  prep.cos = cos;
  prep.sin = sin;
  prep.rows = p.rows;
  prep.eps = p.norm_eps;
  prep.qat = p.qat_simulation;
  ops::attention_prep(stream_, prep);
  if (p.index_heads > 0) {
    // As the CPU computes it: double powers, one fp32 product per weight.
    const float scale = static_cast<float>(std::pow(static_cast<double>(p.index_head_dim), -0.5) *
                                           std::pow(static_cast<double>(p.index_heads), -0.5));
    ops::scale_bf16(stream_, p.index_weights, p.rows * p.index_heads, scale);
  }
}

void CudaBackend::attention_sequences(const AttentionSequencesParams& p, const StepRows& rows) {
  if (rows.rows == 0) return;
  const CompressorParams& mc = p.compressor;
  const CompressorParams& ic = p.index_compressor;
  step_rows_.clear();
  step_runs_.clear();
  emitted_main_.clear();
  emitted_index_.clear();
  for (const SequenceSlice& s : rows.slices) {
    const int64_t end = s.start_position + (s.row_end - s.row_begin);
    FP4SERVE_CHECK(mc.ratio == 0 || end / mc.ratio <= mc.state.capacity,
                   "attention: a sequence at position {} needs {} compressed entries; its state holds {}", end, end / mc.ratio,
                   mc.state.capacity);
    FP4SERVE_CHECK(ic.ratio == 0 || end / ic.ratio <= ic.state.capacity,
                   "attention: a sequence at position {} needs {} indexer entries; its state holds {}", end, end / ic.ratio,
                   ic.state.capacity);
    step_runs_.push_back({s.slot, s.row_begin, s.start_position, end});
    for (int64_t t = s.row_begin; t < s.row_end; ++t) {
      const int64_t q = s.start_position + (t - s.row_begin);
      if (mc.ratio > 0 && (q + 1) % mc.ratio == 0)
        emitted_main_.push_back({static_cast<int32_t>(t), static_cast<int32_t>((q + 1) / mc.ratio - 1)});
      if (ic.ratio > 0 && (q + 1) % ic.ratio == 0)
        emitted_index_.push_back({static_cast<int32_t>(t), static_cast<int32_t>((q + 1) / ic.ratio - 1)});
      step_rows_.push_back({s.slot, s.row_begin, s.start_position, end, q});
    }
  }
  FP4SERVE_CHECK(static_cast<int64_t>(step_rows_.size()) == rows.rows, "attention: the slices cover {} rows of {}",
                 step_rows_.size(), rows.rows);
  const ops::StepRow* d_rows = upload_work(Work::kStepRows, step_rows_);
  const ops::StepRun* d_runs = upload_work(Work::kStepRuns, step_runs_);
  const int64_t n = rows.rows, runs = static_cast<int64_t>(step_runs_.size());
  float* cos = work<float>(Work::kRopeCos, n * p.rope_dim / 2);
  float* sin = work<float>(Work::kRopeSin, n * p.rope_dim / 2);
  ops::rope_angles(stream_, p.rope_freqs, p.rope_dim, rows.positions, n, cos, sin);

  int32_t* selected = nullptr;
  if (ic.ratio > 0) {
    const ops::CompressorParams icp = compressor_params(ic, p, true);
    const ops::EmittedEntry* d_emitted = upload_work(Work::kEmittedIndex, emitted_index_);
    ops::compressor_emit(stream_, icp, d_rows, ic.a, ic.z, d_emitted, static_cast<int64_t>(emitted_index_.size()));
    ops::compressor_store(stream_, icp, d_runs, runs, ic.a, ic.z);
    const int64_t max_entries = (rows.max_position + 1) / ic.ratio + 1;
    float* scores = work<float>(Work::kIndexScores, n * max_entries);
    selected = work<int32_t>(Work::kSelected, n * p.index_topk);
    ops::indexer_select(stream_, ic.state.entries, d_rows, n, p.index_q, p.index_weights, p.index_heads, p.index_head_dim,
                        ic.ratio, p.index_topk, max_entries, scores, selected);
  }
  if (mc.ratio > 0) {
    const ops::CompressorParams mcp = compressor_params(mc, p, false);
    const ops::EmittedEntry* d_emitted = upload_work(Work::kEmittedMain, emitted_main_);
    ops::compressor_emit(stream_, mcp, d_rows, mc.a, mc.z, d_emitted, static_cast<int64_t>(emitted_main_.size()));
    ops::compressor_store(stream_, mcp, d_runs, runs, mc.a, mc.z);
  }
  ops::SparseAttention a;
  a.q = p.q;
  a.kv = p.kv;
  a.sink = p.sink;
  a.cos = cos;
  a.sin = sin;
  a.heads = p.heads;
  a.hd = p.head_dim;
  a.rd = p.rope_dim;
  a.window = p.window;
  a.ratio = mc.ratio;
  a.selected = selected;
  a.topk = p.index_topk;
  const int64_t entries = mc.ratio > 0 ? (selected ? p.index_topk : (rows.max_position + 1) / mc.ratio) : 0;
  a.max_keys = p.window + entries;
  a.scale = p.softmax_scale;
  a.scores = work<float>(Work::kAttentionScores, n * p.heads * a.max_keys);
  a.o = p.out;
  a.window_offset = p.window_offset;
  a.entries_offset = mc.state.entries;
  ops::sparse_attention(stream_, a, d_rows, n);
  ops::window_store(stream_, p.window_offset, d_rows, n, p.kv, p.head_dim, p.window);
}

void CudaBackend::mean_streams(const MeanStreamsParams& p) {
  ops::mean_streams(stream_, p.X, p.rows, p.hc, p.dim, p.y, p.y_stride > 0 ? p.y_stride : p.dim);
}

void CudaBackend::block_attention(const BlockAttentionParams& p, const StepRows& rows) {
  if (rows.rows == 0) return;
  step_rows_.clear();
  int64_t longest = 0;
  for (const SequenceSlice& s : rows.slices) {
    const int64_t end = s.start_position + (s.row_end - s.row_begin);
    longest = std::max(longest, s.row_end - s.row_begin);
    for (int64_t t = s.row_begin; t < s.row_end; ++t)
      step_rows_.push_back({s.slot, s.row_begin, s.start_position, end, s.start_position + (t - s.row_begin)});
  }
  FP4SERVE_CHECK(static_cast<int64_t>(step_rows_.size()) == rows.rows, "block attention: the slices cover {} rows of {}",
                 step_rows_.size(), rows.rows);
  const ops::StepRow* d_rows = upload_work(Work::kStepRows, step_rows_);
  const int64_t n = rows.rows;
  float* cos = work<float>(Work::kRopeCos, n * p.rope_dim / 2);
  float* sin = work<float>(Work::kRopeSin, n * p.rope_dim / 2);
  ops::rope_angles(stream_, p.rope_freqs, p.rope_dim, rows.positions, n, cos, sin);
  ops::BlockAttention a;
  a.q = p.q;
  a.kv = p.kv;
  a.sink = p.sink;
  a.cos = cos;
  a.sin = sin;
  a.heads = p.heads;
  a.hd = p.head_dim;
  a.rd = p.rope_dim;
  a.window = p.window;
  a.ring_offset = p.ring_offset;
  a.max_keys = p.window + longest;
  a.scale = p.softmax_scale;
  a.scores = work<float>(Work::kAttentionScores, n * p.heads * a.max_keys);
  a.o = p.out;
  ops::block_attention(stream_, a, d_rows, n);
}

}  // namespace fp4serve::cuda
#endif
