#include "model/attention_layer.h"

#include <cmath>

namespace fp4serve {
namespace {

CompressorParams compressor_params(Backend& backend, const CompressorWeights& w, const CompressorStateLayout& state) {
  CompressorParams p;
  p.ratio = w.ratio;
  p.dim = w.dim;
  p.overlap = w.overlap;
  p.ape = backend.place(w.ape);
  p.norm = backend.place(w.norm);
  p.state = state;
  return p;
}

}  // namespace

AttentionLayer::AttentionLayer(Backend& backend, const ModelConfig& c, const AttentionWeights& w, const Numerics& numerics,
                               const float* rope_freqs, const AttentionStateLayout& state, bool partial_output)
    : config_(c), weights_(w), numerics_(numerics), partial_output_(partial_output) {
  const float eps = static_cast<float>(c.rms_norm_eps);
  q_norm_ = backend.place(w.q_norm);

  heads_.heads = c.num_heads;
  heads_.head_dim = c.head_dim;
  heads_.rope_dim = c.rope_head_dim;
  heads_.norm_eps = eps;
  heads_.qat_simulation = numerics.qat_simulation;
  heads_.rope_freqs = rope_freqs;
  heads_.kv_norm = backend.place(w.kv_norm);
  if (w.indexer) {
    heads_.index_heads = c.index_n_heads;
    heads_.index_head_dim = c.index_head_dim;
  }

  sequences_.heads = c.num_heads;
  sequences_.head_dim = c.head_dim;
  sequences_.rope_dim = c.rope_head_dim;
  sequences_.window = c.sliding_window;
  sequences_.norm_eps = eps;
  sequences_.softmax_scale = static_cast<float>(std::pow(static_cast<double>(c.head_dim), -0.5));
  sequences_.qat_simulation = numerics.qat_simulation;
  sequences_.rope_freqs = rope_freqs;
  sequences_.sink = backend.place(w.attn_sink);
  sequences_.window_offset = state.window;
  if (w.compressor) sequences_.compressor = compressor_params(backend, *w.compressor, state.compressor);
  if (w.indexer) {
    sequences_.index_compressor = compressor_params(backend, w.indexer->compressor, state.index_compressor);
    sequences_.index_heads = c.index_n_heads;
    sequences_.index_head_dim = c.index_head_dim;
    sequences_.index_topk = c.index_topk;
  }
}

ActivationQuant AttentionLayer::act(const LinearWeight* w) const {
  return numerics_.quantizes_input(w->encoding) ? ActivationQuant::kFP8Block128 : ActivationQuant::kNone;
}

void AttentionLayer::forward(Backend& backend, const float* x, const StepRows& step, AttentionBuffers& b, float* out) const {
  const ModelConfig& c = config_;
  const AttentionWeights& w = weights_;
  const int64_t rows = step.rows;
  const int64_t H = c.num_heads, hd = c.head_dim, ql = c.q_lora_rank, G = c.o_groups, R = c.o_lora_rank;
  const int64_t nih = c.index_n_heads, ihd = c.index_head_dim;
  const CompressorWeights* comp = w.compressor ? &*w.compressor : nullptr;
  const IndexerWeights* ix = w.indexer ? &*w.indexer : nullptr;

  // Token-parallel projections: those of x, the q norm, then those of the normed q.
  float* qa = b.qa.reserve(backend, rows * ql);
  float* kv = b.kv.reserve(backend, rows * hd);
  float* qr = b.qr.reserve(backend, rows * ql);
  float* q = b.q.reserve(backend, rows * H * hd);
  {
    const LinearJob jobs[] = {linear_job(w.wq_a, x, rows, qa, act(w.wq_a), true), linear_job(w.wkv, x, rows, kv, act(w.wkv), true)};
    backend.linear(jobs);
  }
  backend.rms_norm(RmsNormParams{rows, ql, static_cast<float>(c.rms_norm_eps), qa, q_norm_, qr});
  AttentionSequencesParams seq = sequences_;
  AttentionHeadsParams heads = heads_;
  {
    std::vector<LinearJob>& jobs = b.jobs;
    jobs.assign(1, linear_job(w.wq_b, qr, rows, q, act(w.wq_b), true));
    if (comp) {
      float* comp_a = b.comp_a.reserve(backend, rows * comp->coff() * hd);
      float* comp_z = b.comp_z.reserve(backend, rows * comp->coff() * hd);
      jobs.push_back(linear_job(comp->wkv, x, rows, comp_a, act(comp->wkv), false));
      jobs.push_back(linear_job(comp->wgate, x, rows, comp_z, act(comp->wgate), false));
      seq.compressor.a = comp_a;
      seq.compressor.z = comp_z;
    }
    if (ix) {
      float* qi = b.index_q.reserve(backend, rows * nih * ihd);
      float* iw = b.index_weights.reserve(backend, rows * nih);
      float* index_a = b.index_a.reserve(backend, rows * 2 * ihd);
      float* index_z = b.index_z.reserve(backend, rows * 2 * ihd);
      jobs.push_back(linear_job(ix->wq_b, qr, rows, qi, act(ix->wq_b), true));
      jobs.push_back(linear_job(ix->weights_proj, x, rows, iw, act(ix->weights_proj), true));
      jobs.push_back(linear_job(ix->compressor.wkv, x, rows, index_a, act(ix->compressor.wkv), false));
      jobs.push_back(linear_job(ix->compressor.wgate, x, rows, index_z, act(ix->compressor.wgate), false));
      heads.index_q = qi;
      seq.index_q = qi;
      heads.index_weights = iw;
      seq.index_weights = iw;
      seq.index_compressor.a = index_a;
      seq.index_compressor.z = index_z;
    }
    backend.linear(jobs);
  }

  heads.rows = rows;
  heads.positions = step.positions;
  heads.q = q;
  heads.kv = kv;
  backend.attention_heads(heads);

  float* o = b.o.reserve(backend, rows * H * hd);
  seq.q = q;
  seq.kv = kv;
  seq.out = o;
  backend.attention_sequences(seq, step);

  // The grouped output projection.
  float* z = b.z.reserve(backend, rows * G * R);
  {
    std::vector<LinearJob>& jobs = b.jobs;
    jobs.clear();
    const int64_t group_in = H * hd / G;
    for (int64_t g = 0; g < G; ++g) {
      // wo_a runs as bf16 x bf16 in the reference (it dequantizes the weight), so no activation quantization.
      LinearJob j = linear_job(w.wo_a, o + g * group_in, rows, z + g * R, ActivationQuant::kNone, true);
      j.x_stride = H * hd;
      j.y_stride = G * R;
      j.row_begin = g * R;
      j.row_end = (g + 1) * R;
      jobs.push_back(j);
    }
    backend.linear(jobs);
  }
  const LinearJob wo_b = linear_job(w.wo_b, z, rows, out, act(w.wo_b), !partial_output_);
  backend.linear(std::span<const LinearJob>(&wo_b, 1));
}

}  // namespace fp4serve
