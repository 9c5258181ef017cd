#include "model/dspark_draft.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "formats/number_formats.h"
#include "formats/weight_dequantization.h"
#include "model/hc_scratch.h"
#include "model/rope.h"

namespace fp4serve {

// One draft stage: a V4 block whose attention reads the stage's context ring and the block.
struct DsparkDraft::Stage {
  const BlockWeights* weights = nullptr;
  HcSite hc_attn, hc_ffn;
  const float* attn_norm = nullptr;
  const float* ffn_norm = nullptr;
  const float* q_norm = nullptr;
  AttentionHeadsParams heads;      // the fixed part
  BlockAttentionParams attention;  // the fixed part
  std::unique_ptr<MoeLayer> moe;
};

struct DsparkDraft::Buffers {
  std::vector<int32_t> tokens;
  std::vector<int64_t> positions, row_ids;
  std::vector<SequenceSlice> slices;
  std::vector<LinearJob> jobs;
  DeviceArray<int32_t> device_tokens;
  DeviceArray<int64_t> device_positions, device_row_ids;
  DeviceArray<SequenceSlice> device_slices;
  HcScratch hc;
  DeviceArray<float> taps, main_x, kv, X, u, xn, block_out, y, logits, markov_x, qa, qr, q, o, z;
  int64_t tap_rows = 0;
};

namespace {

HcSite place_site(Backend& backend, const HyperConnectionWeights& site) {
  return HcSite{&site.fn, backend.place(site.base), backend.place(site.scale)};
}

template <typename Fn>
void for_each_stage_linear(const BlockWeights& b, const Fn& fn) {
  fn(b.hc_attn.fn);
  fn(b.hc_ffn.fn);
  for (const LinearWeight* w : {b.attn.wq_a, b.attn.wq_b, b.attn.wkv, b.attn.wo_a, b.attn.wo_b}) fn(*w);
  fn(*b.ffn.gate);
  for (const ExpertWeights& e : b.ffn.experts)
    for (const LinearWeight* w : {e.w1, e.w2, e.w3}) fn(*w);
  for (const LinearWeight* w : {b.ffn.shared.w1, b.ffn.shared.w2, b.ffn.shared.w3}) fn(*w);
}

}  // namespace

DsparkDraft::DsparkDraft(Backend& backend, const ModelConfig& config, const DsparkWeights& weights, const LinearWeight* head,
                         const void* embed_table, DType embed_dtype, const Numerics& numerics, const StateLayout& layout)
    : backend_(backend),
      config_(config),
      weights_(weights),
      head_(head),
      embed_table_(embed_table),
      embed_dtype_(embed_dtype),
      numerics_(numerics),
      buffers_(std::make_unique<Buffers>()) {
  FP4SERVE_CHECK(layout.draft_rings >= 0, "DSpark draft: the state layout has no context rings");
  ring_base_ = layout.draft_rings;
  ring_floats_ = layout.draft_ring_floats;
  auto place_linear = [&](const LinearWeight& w) { backend_.place(w); };
  place_linear(*weights_.main_proj);
  for (const BlockWeights& b : weights_.stages) for_each_stage_linear(b, place_linear);
  place_linear(weights_.hc_head.fn);
  if (weights_.markov_w2) {
    place_linear(*weights_.markov_w2);
    markov_table_ = backend_.place(weights_.markov_w1);
  }
  if (weights_.confidence) confidence_weights_ = dequantize_to_f32(*weights_.confidence);

  // Draft layers have compress ratio 0: plain RoPE with rope_theta, no YaRN.
  rope_table_ = rope_frequencies_for_layer(config_, 0);
  rope_freqs_ = backend_.place(rope_table_);
  main_norm_ = backend_.place(weights_.main_norm);
  norm_ = backend_.place(weights_.norm);
  hc_head_ = place_site(backend_, weights_.hc_head);

  tap_column_.assign(static_cast<size_t>(config_.num_layers), -1);
  for (size_t j = 0; j < config_.draft.target_layer_ids.size(); ++j)
    tap_column_[static_cast<size_t>(config_.draft.target_layer_ids[j])] = static_cast<int64_t>(j);

  const float eps = static_cast<float>(config_.rms_norm_eps);
  for (size_t s = 0; s < weights_.stages.size(); ++s) {
    const BlockWeights& w = weights_.stages[s];
    auto stage = std::make_unique<Stage>();
    stage->weights = &w;
    stage->hc_attn = place_site(backend_, w.hc_attn);
    stage->hc_ffn = place_site(backend_, w.hc_ffn);
    stage->attn_norm = backend_.place(w.attn_norm);
    stage->ffn_norm = backend_.place(w.ffn_norm);
    stage->q_norm = backend_.place(w.attn.q_norm);
    AttentionHeadsParams& h = stage->heads;
    h.heads = config_.num_heads;
    h.head_dim = config_.head_dim;
    h.rope_dim = config_.rope_head_dim;
    h.norm_eps = eps;
    h.qat_simulation = numerics_.qat_simulation;
    h.rope_freqs = rope_freqs_;
    h.kv_norm = backend_.place(w.attn.kv_norm);
    BlockAttentionParams& a = stage->attention;
    a.heads = config_.num_heads;
    a.head_dim = config_.head_dim;
    a.rope_dim = config_.rope_head_dim;
    a.window = config_.draft.sliding_window;
    a.softmax_scale = static_cast<float>(std::pow(static_cast<double>(config_.head_dim), -0.5));
    a.rope_freqs = rope_freqs_;
    a.sink = backend_.place(w.attn.attn_sink);
    a.ring_offset = ring_base_ + static_cast<int64_t>(s) * ring_floats_;
    stage->moe = std::make_unique<MoeLayer>(backend_, config_, w.ffn, numerics_);
    stages_.push_back(std::move(stage));
  }
}

DsparkDraft::~DsparkDraft() = default;

void DsparkDraft::begin_taps(int64_t rows) {
  const int64_t width = static_cast<int64_t>(config_.draft.target_layer_ids.size()) * config_.hidden_size;
  buffers_->taps.reserve(backend_, rows * width);
  buffers_->tap_rows = rows;
}

void DsparkDraft::tap(const float* X, int64_t rows, int64_t layer) {
  const int64_t column = tap_column_[static_cast<size_t>(layer)];
  if (column < 0) return;
  const int64_t D = config_.hidden_size;
  const int64_t width = static_cast<int64_t>(config_.draft.target_layer_ids.size()) * D;
  float* taps = buffers_->taps.reserve(backend_, rows * width);
  backend_.mean_streams(MeanStreamsParams{rows, D, config_.hc_mult, X, taps + column * D, width});
}

std::vector<float> DsparkDraft::read_taps() {
  const int64_t width = static_cast<int64_t>(config_.draft.target_layer_ids.size()) * config_.hidden_size;
  std::vector<float> out(static_cast<size_t>(buffers_->tap_rows * width));
  backend_.copy_to_host(out.data(), buffers_->taps.reserve(backend_, buffers_->tap_rows * width), out.size() * sizeof(float));
  return out;
}

StepRows DsparkDraft::upload_rows(const std::vector<int32_t>& tokens, const std::vector<int64_t>& positions,
                                  const std::vector<SequenceSlice>& slices) {
  Buffers& b = *buffers_;
  const int64_t rows = static_cast<int64_t>(positions.size());
  StepRows step;
  step.rows = rows;
  step.slices = slices;
  int64_t* device_positions = b.device_positions.reserve(backend_, rows);
  backend_.copy_to_device(device_positions, positions.data(), positions.size() * sizeof(int64_t));
  step.positions = device_positions;
  if (!tokens.empty()) {
    int32_t* device_tokens = b.device_tokens.reserve(backend_, rows);
    backend_.copy_to_device(device_tokens, tokens.data(), tokens.size() * sizeof(int32_t));
    step.tokens = device_tokens;
  }
  SequenceSlice* device_slices = b.device_slices.reserve(backend_, static_cast<int64_t>(slices.size()));
  backend_.copy_to_device(device_slices, slices.data(), slices.size() * sizeof(SequenceSlice));
  step.device_slices = device_slices;
  for (int64_t p : positions) step.max_position = std::max(step.max_position, p);
  return step;
}

void DsparkDraft::insert_context(std::span<const DraftContextRun> runs) {
  Buffers& b = *buffers_;
  const int64_t D = config_.hidden_size, hd = config_.head_dim, W = config_.draft.sliding_window;
  const int64_t width = static_cast<int64_t>(config_.draft.target_layer_ids.size()) * D;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  // Positions older than the ring's window would be overwritten at once: skip them.
  b.positions.clear();
  b.slices.clear();
  int64_t total = 0;
  for (const DraftContextRun& r : runs) {
    FP4SERVE_CHECK(r.tap_row >= 0 && r.tap_row + r.count <= b.tap_rows, "DSpark context: taps rows [{}, {}) outside the {} of the last step",
                   r.tap_row, r.tap_row + r.count, b.tap_rows);
    const int64_t skip = std::max<int64_t>(0, r.count - W);
    const int64_t n = r.count - skip;
    if (n <= 0) continue;
    b.slices.push_back({total, total + n, r.position + skip, r.slot});
    for (int64_t i = skip; i < r.count; ++i) b.positions.push_back(r.position + i);
    total += n;
  }
  if (total == 0) return;
  const StepRows rows = upload_rows({}, b.positions, b.slices);
  float* main_x = b.main_x.reserve(backend_, total * D);
  const float* taps = b.taps.reserve(backend_, b.tap_rows * width);
  const ActivationQuant proj_act =
      numerics_.quantizes_input(weights_.main_proj->encoding) ? ActivationQuant::kFP8Block128 : ActivationQuant::kNone;
  b.jobs.clear();
  {
    size_t i = 0;
    for (const DraftContextRun& r : runs) {
      const int64_t skip = std::max<int64_t>(0, r.count - W);
      if (r.count - skip <= 0) continue;
      const SequenceSlice& s = b.slices[i++];
      b.jobs.push_back(linear_job(weights_.main_proj, taps + (r.tap_row + skip) * width, s.row_end - s.row_begin,
                                  main_x + s.row_begin * D, proj_act, true));
    }
  }
  backend_.linear(b.jobs);
  backend_.rms_norm(RmsNormParams{total, D, eps, main_x, main_norm_, main_x});
  float* kv = b.kv.reserve(backend_, total * hd);
  for (const auto& stage : stages_) {
    const LinearWeight* wkv = stage->weights->attn.wkv;
    const ActivationQuant act = numerics_.quantizes_input(wkv->encoding) ? ActivationQuant::kFP8Block128 : ActivationQuant::kNone;
    const LinearJob job = linear_job(wkv, main_x, total, kv, act, true);
    backend_.linear(std::span<const LinearJob>(&job, 1));
    AttentionHeadsParams h = stage->heads;
    h.heads = 0;  // the context has no queries: kv_norm, RoPE and the QAT simulation only
    h.rows = total;
    h.positions = rows.positions;
    h.kv = kv;
    backend_.attention_heads(h);
    for (const SequenceSlice& s : b.slices)
      for (int64_t t = s.row_begin; t < s.row_end; ++t) {
        const int64_t pos = s.start_position + (t - s.row_begin);
        float* dst = s.slot + stage->attention.ring_offset + (pos % W) * hd;
        backend_.copy_on_device(dst, kv + t * hd, static_cast<size_t>(hd) * sizeof(float));
      }
  }
}

void DsparkDraft::run_stage(const Stage& stage, float* X, const StepRows& rows) {
  Buffers& b = *buffers_;
  const ModelConfig& c = config_;
  const int64_t n = rows.rows, D = c.hidden_size, hc = c.hc_mult;
  const int64_t H = c.num_heads, hd = c.head_dim, ql = c.q_lora_rank, G = c.o_groups, R = c.o_lora_rank;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const AttentionWeights& w = stage.weights->attn;
  auto act = [&](const LinearWeight* weight) {
    return numerics_.quantizes_input(weight->encoding) ? ActivationQuant::kFP8Block128 : ActivationQuant::kNone;
  };
  float* u = b.u.reserve(backend_, n * D);
  float* xn = b.xn.reserve(backend_, n * D);
  float* out = b.block_out.reserve(backend_, n * D);
  HcPreParams pre = b.hc.pre_params(backend_, c, n, X, u);
  const HcPostParams post{n, D, hc, out, X, pre.post, pre.comb};

  pre.site = stage.hc_attn;
  backend_.hc_pre(pre);
  backend_.rms_norm(RmsNormParams{n, D, eps, u, stage.attn_norm, xn});
  // DSparkAttention: the q path and the block's own K=V head, as in the target's attention.
  float* qa = b.qa.reserve(backend_, n * ql);
  float* kv = b.kv.reserve(backend_, n * hd);
  float* qr = b.qr.reserve(backend_, n * ql);
  float* q = b.q.reserve(backend_, n * H * hd);
  {
    const LinearJob jobs[] = {linear_job(w.wq_a, xn, n, qa, act(w.wq_a), true), linear_job(w.wkv, xn, n, kv, act(w.wkv), true)};
    backend_.linear(jobs);
  }
  backend_.rms_norm(RmsNormParams{n, ql, eps, qa, stage.q_norm, qr});
  {
    const LinearJob job = linear_job(w.wq_b, qr, n, q, act(w.wq_b), true);
    backend_.linear(std::span<const LinearJob>(&job, 1));
  }
  AttentionHeadsParams heads = stage.heads;
  heads.rows = n;
  heads.positions = rows.positions;
  heads.q = q;
  heads.kv = kv;
  backend_.attention_heads(heads);
  float* o = b.o.reserve(backend_, n * H * hd);
  BlockAttentionParams attention = stage.attention;
  attention.q = q;
  attention.kv = kv;
  attention.out = o;
  backend_.block_attention(attention, rows);
  float* z = b.z.reserve(backend_, n * G * R);
  b.jobs.clear();
  const int64_t group_in = H * hd / G;
  for (int64_t g = 0; g < G; ++g) {
    // wo_a runs as bf16 x bf16 in the reference (it dequantizes the weight).
    LinearJob j = linear_job(w.wo_a, o + g * group_in, n, z + g * R, ActivationQuant::kNone, true);
    j.x_stride = H * hd;
    j.y_stride = G * R;
    j.row_begin = g * R;
    j.row_end = (g + 1) * R;
    b.jobs.push_back(j);
  }
  backend_.linear(b.jobs);
  {
    const LinearJob job = linear_job(w.wo_b, z, n, out, act(w.wo_b), true);
    backend_.linear(std::span<const LinearJob>(&job, 1));
  }
  backend_.hc_post(post);

  pre.site = stage.hc_ffn;
  backend_.hc_pre(pre);
  backend_.rms_norm(RmsNormParams{n, D, eps, u, stage.ffn_norm, xn});
  stage.moe->forward(backend_, xn, rows.tokens, n, out);
  backend_.hc_post(post);
}

void DsparkDraft::draft(std::span<const DraftBlockRun> runs, std::vector<float>& logits, std::vector<float>& hidden) {
  Buffers& b = *buffers_;
  const int64_t B = block_size(), D = config_.hidden_size, hc = config_.hc_mult, V = config_.vocab_size;
  if (runs.empty()) return;
  b.tokens.clear();
  b.positions.clear();
  b.slices.clear();
  b.row_ids.clear();
  for (const DraftBlockRun& r : runs) {
    FP4SERVE_CHECK(r.anchor >= 0 && r.anchor < V, "DSpark draft: anchor token {} outside the vocabulary [0, {})", r.anchor, V);
    FP4SERVE_CHECK(r.position >= 1, "DSpark draft: a block at position {} has no context", r.position);
    const int64_t first = static_cast<int64_t>(b.tokens.size());
    b.slices.push_back({first, first + B, r.position, r.slot});
    for (int64_t k = 0; k < B; ++k) {
      b.tokens.push_back(k == 0 ? r.anchor : static_cast<int32_t>(config_.draft.noise_token_id));
      b.positions.push_back(r.position + k);
      b.row_ids.push_back(first + k);
    }
  }
  const StepRows rows = upload_rows(b.tokens, b.positions, b.slices);
  const int64_t n = rows.rows;
  float* X = b.X.reserve(backend_, n * hc * D);
  backend_.embed(EmbedParams{embed_table_, embed_dtype_, V, D, hc, rows.tokens, n, X});
  for (const auto& stage : stages_) run_stage(*stage, X, rows);

  int64_t* row_ids = b.device_row_ids.reserve(backend_, n);
  backend_.copy_to_device(row_ids, b.row_ids.data(), b.row_ids.size() * sizeof(int64_t));
  const float eps = static_cast<float>(config_.rms_norm_eps);
  float* h = b.y.reserve(backend_, 2 * n * D);
  float* y = h + n * D;
  HcHeadParams p;
  p.site = hc_head_;
  p.rows = n;
  p.dim = D;
  p.hc = hc;
  p.norm_eps = eps;
  p.hc_eps = static_cast<float>(config_.hc_eps);
  p.X = X;
  p.row_ids = row_ids;
  p.y = h;
  backend_.hc_head(p);
  backend_.rms_norm(RmsNormParams{n, D, eps, h, norm_, y});
  float* device_logits = b.logits.reserve(backend_, n * V);
  const LinearJob job = linear_job(head_, y, n, device_logits, ActivationQuant::kNone, false);
  backend_.linear(std::span<const LinearJob>(&job, 1));
  const size_t at_h = hidden.size(), at_l = logits.size();
  hidden.resize(at_h + static_cast<size_t>(n * D));
  logits.resize(at_l + static_cast<size_t>(n * V));
  backend_.copy_to_host(hidden.data() + at_h, h, static_cast<size_t>(n * D) * sizeof(float));
  backend_.copy_to_host(logits.data() + at_l, device_logits, static_cast<size_t>(n * V) * sizeof(float));
}

void DsparkDraft::markov_bias(std::span<const int32_t> prev, std::vector<float>& bias) {
  FP4SERVE_CHECK(has_markov_head(), "DSpark draft: the checkpoint has no Markov head");
  Buffers& b = *buffers_;
  const int64_t n = static_cast<int64_t>(prev.size()), V = config_.vocab_size, r = config_.draft.markov_rank;
  if (n == 0) return;
  for (int32_t t : prev) FP4SERVE_CHECK(t >= 0 && t < V, "DSpark Markov head: token {} outside the vocabulary [0, {})", t, V);
  int32_t* tokens = b.device_tokens.reserve(backend_, n);
  backend_.copy_to_device(tokens, prev.data(), prev.size() * sizeof(int32_t));
  float* m = b.markov_x.reserve(backend_, n * r);
  backend_.embed(EmbedParams{markov_table_, weights_.markov_w1.dtype, V, r, 1, tokens, n, m});
  float* out = b.logits.reserve(backend_, n * V);
  const LinearJob job = linear_job(weights_.markov_w2, m, n, out, ActivationQuant::kNone, false);
  backend_.linear(std::span<const LinearJob>(&job, 1));
  const size_t at = bias.size();
  bias.resize(at + static_cast<size_t>(n * V));
  backend_.copy_to_host(bias.data() + at, out, static_cast<size_t>(n * V) * sizeof(float));
}

double DsparkDraft::confidence_logit(std::span<const float> hidden, int32_t prev) const {
  FP4SERVE_CHECK(has_confidence_head(), "DSpark draft: the checkpoint has no confidence head");
  const int64_t D = config_.hidden_size, V = config_.vocab_size;
  FP4SERVE_CHECK(static_cast<int64_t>(hidden.size()) == D, "DSpark confidence: hidden of {} values, expected {}", hidden.size(), D);
  FP4SERVE_CHECK(prev >= 0 && prev < V, "DSpark confidence: token {} outside the vocabulary [0, {})", prev, V);
  double sum = 0.0;
  for (int64_t i = 0; i < D; ++i) sum += static_cast<double>(confidence_weights_[static_cast<size_t>(i)]) * hidden[static_cast<size_t>(i)];
  if (has_markov_head()) {
    const int64_t r = config_.draft.markov_rank;
    const TensorView& t = weights_.markov_w1;
    for (int64_t i = 0; i < r; ++i) {
      const int64_t at = static_cast<int64_t>(prev) * r + i;
      float m = 0.0f;
      switch (t.dtype) {
        case DType::F32: m = round_bf16(t.as<float>()[at]); break;
        case DType::F16: m = round_bf16(decode_f16(t.as<uint16_t>()[at])); break;
        default: m = decode_bf16(t.as<uint16_t>()[at]); break;
      }
      sum += static_cast<double>(confidence_weights_[static_cast<size_t>(D + i)]) * m;
    }
  }
  return sum;
}

}  // namespace fp4serve
