#include "model/model.h"

#include <set>

#include "base/error.h"
#include "model/hc_scratch.h"
#include "model/rope.h"

namespace fp4serve {

// Step buffers: host tables built per step, and their device copies.
struct Model::Buffers {
  std::vector<int32_t> tokens, local_tokens;
  std::vector<int64_t> positions, logit_rows;
  std::vector<SequenceSlice> slices;
  std::vector<SequenceId> seen;
  DeviceArray<int32_t> device_tokens, device_local_tokens;
  DeviceArray<int64_t> device_positions, device_logit_rows;
  DeviceArray<SequenceSlice> device_slices;
  HcScratch hc;
  DeviceArray<float> X, u, xn, block_out, y, logits, embedded, projected, streams;
  AttentionBuffers attention;
};

namespace {

ResolveOptions resolve_options(const ModelShard& shard) {
  ResolveOptions o;
  if (shard.collectives == nullptr) return o;
  o.head_rows = shard.vocab_end - shard.vocab_begin;
  o.embed_rows = o.head_rows + 1;
  o.shared_intermediate = shard.shared_intermediate;
  o.absent_experts = shard.absent_experts;
  return o;
}

std::set<WeightEncoding> encodings_of(const LinearMap& linears) {
  std::set<WeightEncoding> out;
  for (const auto& [name, w] : linears) out.insert(w.encoding);
  return out;
}

// Every projection of a block, for placement.
template <typename Fn>
void for_each_linear(const BlockWeights& b, const Fn& fn) {
  fn(b.hc_attn.fn);
  fn(b.hc_ffn.fn);
  const AttentionWeights& a = b.attn;
  for (const LinearWeight* w : {a.wq_a, a.wq_b, a.wkv, a.wo_a, a.wo_b}) fn(*w);
  if (a.compressor) {
    fn(*a.compressor->wkv);
    fn(*a.compressor->wgate);
  }
  if (a.indexer) {
    for (const LinearWeight* w : {a.indexer->wq_b, a.indexer->weights_proj, a.indexer->compressor.wkv, a.indexer->compressor.wgate})
      fn(*w);
  }
  fn(*b.ffn.gate);
  for (const ExpertWeights& e : b.ffn.experts)
    for (const LinearWeight* w : {e.w1, e.w2, e.w3}) fn(*w);
  for (const LinearWeight* w : {b.ffn.shared.w1, b.ffn.shared.w2, b.ffn.shared.w3}) fn(*w);
}

}  // namespace

Model::Model(Backend& backend, const ModelConfig& config, const LinearMap& linears, const TensorMap& tensors,
             const ModelOptions& options, const ModelShard& shard)
    : backend_(backend),
      shard_(shard),
      config_(config),
      numerics_(numerics_for(encodings_of(linears), options.act_quant)),
      weights_(resolve_weights(config, linears, tensors, resolve_options(shard))),
      layout_(fp4serve::state_layout(config, options.context)),
      pool_(backend, layout_.slot_floats, layout_.initial_values),
      buffers_(std::make_unique<Buffers>()) {
  // Projections first (the bulk of the bytes), then the small parameters.
  auto place_linear = [&](const LinearWeight& w) { backend_.place(w); };
  place_linear(*weights_.head);
  for (const BlockWeights& b : weights_.layers) for_each_linear(b, place_linear);
  for (const MtpWeights& m : weights_.mtp) {
    place_linear(*m.e_proj);
    place_linear(*m.h_proj);
    place_linear(m.hc_head.fn);
    for_each_linear(m.block, place_linear);
  }
  place_linear(weights_.hc_head.fn);
  embed_table_ = backend_.place(weights_.embed);

  rope_tables_.push_back(rope_frequencies_for_layer(config_, 0));
  rope_tables_.push_back(rope_frequencies_for_layer(config_, 1));
  rope_freqs_[0] = backend_.place(rope_tables_[0]);
  rope_freqs_[1] = backend_.place(rope_tables_[1]);

  head_ = Head{place_site(weights_.hc_head), backend_.place(weights_.norm)};
  for (int64_t i = 0; i < config_.num_layers; ++i) blocks_.push_back(make_block(weights_.layers[static_cast<size_t>(i)], i));
  for (int64_t j = 0; j < config_.num_mtp_layers; ++j) {
    const MtpWeights& m = weights_.mtp[static_cast<size_t>(j)];
    blocks_.push_back(make_block(m.block, config_.num_layers + j));
    mtp_heads_.push_back(Head{place_site(m.hc_head), backend_.place(m.norm)});
    mtp_enorm_.push_back(backend_.place(m.enorm));
    mtp_hnorm_.push_back(backend_.place(m.hnorm));
  }
  if (weights_.dspark)
    dspark_ = std::make_unique<DsparkDraft>(backend_, config_, *weights_.dspark, weights_.head, embed_table_, weights_.embed.dtype,
                                            numerics_, layout_);
  rollback_regions_ = rollback_regions(config_, layout_);
}

Model::~Model() = default;

HcSite Model::place_site(const HyperConnectionWeights& site) {
  return HcSite{&site.fn, backend_.place(site.base), backend_.place(site.scale)};
}

Model::Block Model::make_block(const BlockWeights& w, int64_t layer) {
  Block b;
  b.weights = &w;
  b.hc_attn = place_site(w.hc_attn);
  b.hc_ffn = place_site(w.hc_ffn);
  b.attn_norm = backend_.place(w.attn_norm);
  b.ffn_norm = backend_.place(w.ffn_norm);
  const float* freqs = rope_freqs_[config_.compress_ratio(layer) > 0 ? 1 : 0];
  b.attention = std::make_unique<AttentionLayer>(backend_, config_, w.attn, numerics_, freqs,
                                                 layout_.layers[static_cast<size_t>(layer)], shard_.collectives != nullptr);
  b.moe = std::make_unique<MoeLayer>(backend_, config_, w.ffn, numerics_);
  return b;
}

void Model::create_sequence(SequenceId id) {
  FP4SERVE_CHECK(!sequences_.count(id), "model: sequence {} already exists", id);
  Sequence s;
  s.slot = pool_.acquire();
  sequences_.emplace(id, std::move(s));
}

void Model::free_sequence(SequenceId id) {
  auto it = sequences_.find(id);
  FP4SERVE_CHECK(it != sequences_.end(), "model: free of unknown sequence {}", id);
  sequences_.erase(it);
}

Model::Sequence& Model::sequence(SequenceId id, const char* what) {
  auto it = sequences_.find(id);
  FP4SERVE_CHECK(it != sequences_.end(), "{}: unknown sequence {}", what, id);
  return it->second;
}

int64_t Model::position(SequenceId id) const {
  auto it = sequences_.find(id);
  FP4SERVE_CHECK(it != sequences_.end(), "model: unknown sequence {}", id);
  return it->second.position;
}

int64_t Model::mtp_position(SequenceId id) const {
  auto it = sequences_.find(id);
  FP4SERVE_CHECK(it != sequences_.end(), "model: unknown sequence {}", id);
  return it->second.mtp_position;
}

void Model::begin_step() {
  Buffers& b = *buffers_;
  b.tokens.clear();
  b.positions.clear();
  b.slices.clear();
  b.logit_rows.clear();
  b.seen.clear();
}

// Appends one sequence's new tokens, at positions from `position` on, to the step's tables,
// after every check that must hold before the first op runs.
void Model::add_to_step(SequenceId id, int64_t position, std::span<const int32_t> tokens, LogitsMode logits, const char* what) {
  Buffers& b = *buffers_;
  for (SequenceId earlier : b.seen) FP4SERVE_CHECK(earlier != id, "{}: sequence {} appears twice in one step", what, id);
  b.seen.push_back(id);
  FP4SERVE_CHECK(!tokens.empty(), "{}: sequence {} has no new tokens", what, id);
  const int64_t n = static_cast<int64_t>(tokens.size());
  FP4SERVE_CHECK(position + n <= layout_.context, "{}: sequence {} would reach {} tokens, its state holds {}", what, id,
                 position + n, layout_.context);
  const int64_t first = static_cast<int64_t>(b.tokens.size());
  b.slices.push_back({first, first + n, position, sequences_.at(id).slot.data()});
  for (int64_t i = 0; i < n; ++i) {
    const int32_t tok = tokens[static_cast<size_t>(i)];
    FP4SERVE_CHECK(tok >= 0 && tok < config_.vocab_size, "token id {} outside the vocabulary [0, {})", tok, config_.vocab_size);
    b.tokens.push_back(tok);
    b.positions.push_back(position + i);
    if (logits == LogitsMode::kAll) b.logit_rows.push_back(first + i);
  }
  if (logits == LogitsMode::kLast) b.logit_rows.push_back(first + n - 1);
}

void Model::check_step(std::span<const StepItem> items) const {
  for (size_t i = 0; i < items.size(); ++i) {
    const StepItem& item = items[i];
    auto it = sequences_.find(item.sequence);
    FP4SERVE_CHECK(it != sequences_.end(), "forward: unknown sequence {}", item.sequence);
    FP4SERVE_CHECK(item.position == it->second.position, "forward: sequence {} is at position {}, the step says {}",
                   item.sequence, it->second.position, item.position);
    for (size_t j = 0; j < i; ++j)
      FP4SERVE_CHECK(items[j].sequence != item.sequence, "forward: sequence {} appears twice in one step", item.sequence);
    FP4SERVE_CHECK(!item.tokens.empty(), "forward: sequence {} has no new tokens", item.sequence);
    const int64_t reach = item.position + static_cast<int64_t>(item.tokens.size());
    FP4SERVE_CHECK(reach <= layout_.context, "forward: sequence {} would reach {} tokens, its state holds {}",
                   item.sequence, reach, layout_.context);
    for (int32_t tok : item.tokens)
      FP4SERVE_CHECK(tok >= 0 && tok < config_.vocab_size, "token id {} outside the vocabulary [0, {})", tok,
                     config_.vocab_size);
  }
}

StepRows Model::upload_step() {
  Buffers& b = *buffers_;
  const int64_t rows = static_cast<int64_t>(b.tokens.size()), n = static_cast<int64_t>(b.slices.size());
  StepRows step;
  step.rows = rows;
  step.slices = b.slices;
  int32_t* tokens = b.device_tokens.reserve(backend_, rows);
  int64_t* positions = b.device_positions.reserve(backend_, rows);
  SequenceSlice* slices = b.device_slices.reserve(backend_, n);
  backend_.copy_to_device(tokens, b.tokens.data(), b.tokens.size() * sizeof(int32_t));
  backend_.copy_to_device(positions, b.positions.data(), b.positions.size() * sizeof(int64_t));
  backend_.copy_to_device(slices, b.slices.data(), b.slices.size() * sizeof(SequenceSlice));
  step.tokens = tokens;
  step.positions = positions;
  step.device_slices = slices;
  for (int64_t p : b.positions) step.max_position = std::max(step.max_position, p);
  return step;
}

void Model::run_block(const Block& block, float* X, const StepRows& rows) {
  Buffers& b = *buffers_;
  const int64_t n = rows.rows, D = config_.hidden_size, hc = config_.hc_mult;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  float* u = b.u.reserve(backend_, n * D);
  float* xn = b.xn.reserve(backend_, n * D);
  float* out = b.block_out.reserve(backend_, n * D);
  HcPreParams pre = b.hc.pre_params(backend_, config_, n, X, u);
  const HcPostParams post{n, D, hc, out, X, pre.post, pre.comb};

  pre.site = block.hc_attn;
  backend_.hc_pre(pre);
  backend_.rms_norm(RmsNormParams{n, D, eps, u, block.attn_norm, xn});
  block.attention->forward(backend_, xn, rows, b.attention, out);
  join_partials(out, n, D);
  backend_.hc_post(post);

  pre.site = block.hc_ffn;
  backend_.hc_pre(pre);
  backend_.rms_norm(RmsNormParams{n, D, eps, u, block.ffn_norm, xn});
  block.moe->forward(backend_, xn, rows.tokens, n, out);
  join_partials(out, n, D);
  backend_.hc_post(post);
}

void Model::join_partials(float* data, int64_t rows, int64_t width) {
  if (shard_.collectives != nullptr) shard_.collectives->sum_bf16(data, rows, width);
}

void Model::embed_step(const StepRows& rows, int64_t copies, float* X) {
  const int64_t D = config_.hidden_size;
  if (shard_.collectives == nullptr) {
    backend_.embed(EmbedParams{embed_table_, weights_.embed.dtype, config_.vocab_size, D, copies, rows.tokens, rows.rows, X});
    return;
  }
  // Tokens of other ranks' rows read the zero row after this rank's; the sum over ranks
  // then adds one looked-up row and zeros, which is exact.
  Buffers& b = *buffers_;
  const int64_t local_rows = shard_.vocab_end - shard_.vocab_begin;
  b.local_tokens.clear();
  for (int32_t tok : b.tokens)
    b.local_tokens.push_back(tok >= shard_.vocab_begin && tok < shard_.vocab_end ? static_cast<int32_t>(tok - shard_.vocab_begin)
                                                                                 : static_cast<int32_t>(local_rows));
  int32_t* local = b.device_local_tokens.reserve(backend_, rows.rows);
  backend_.copy_to_device(local, b.local_tokens.data(), b.local_tokens.size() * sizeof(int32_t));
  if (copies == 1) {
    backend_.embed(EmbedParams{embed_table_, weights_.embed.dtype, local_rows + 1, D, 1, local, rows.rows, X});
    join_partials(X, rows.rows, D);
    return;
  }
  // One copy crosses the wire; the streams get it after: X = bf16(0 + e) for each (exact).
  float* e = b.embedded.reserve(backend_, rows.rows * D);
  backend_.embed(EmbedParams{embed_table_, weights_.embed.dtype, local_rows + 1, D, 1, local, rows.rows, e});
  join_partials(e, rows.rows, D);
  backend_.fill(X, rows.rows * copies * D, 0.0f);
  backend_.add_to_streams(AddToStreamsParams{rows.rows, D, copies, e, X});
}

void Model::head_logits(const Head& head, const float* X, std::vector<float>& logits) {
  Buffers& b = *buffers_;
  const int64_t D = config_.hidden_size, hc = config_.hc_mult, V = config_.vocab_size;
  const int64_t n = static_cast<int64_t>(b.logit_rows.size());
  if (n == 0) return;
  int64_t* row_ids = b.device_logit_rows.reserve(backend_, n);
  backend_.copy_to_device(row_ids, b.logit_rows.data(), b.logit_rows.size() * sizeof(int64_t));
  const float eps = static_cast<float>(config_.rms_norm_eps);
  float* y = b.y.reserve(backend_, n * D);
  HcHeadParams p;
  p.site = head.hc;
  p.rows = n;
  p.dim = D;
  p.hc = hc;
  p.norm_eps = eps;
  p.hc_eps = static_cast<float>(config_.hc_eps);
  p.X = X;
  p.row_ids = row_ids;
  p.y = y;
  backend_.hc_head(p);
  backend_.rms_norm(RmsNormParams{n, D, eps, y, head.norm, y});
  const int64_t head_rows = weights_.head->out_features;  // V, or this rank's part of it
  float* device_logits = b.logits.reserve(backend_, n * head_rows);
  LinearJob job;
  job.weight = weights_.head;
  job.x = y;
  job.rows = n;
  job.y = device_logits;
  backend_.linear(std::span<const LinearJob>(&job, 1));
  if (shard_.collectives != nullptr) {
    shard_.collectives->gather_vocabulary(device_logits, n, logits);
    return;
  }
  const size_t at = logits.size();
  logits.resize(at + static_cast<size_t>(n * V));
  backend_.copy_to_host(logits.data() + at, device_logits, static_cast<size_t>(n * V) * sizeof(float));
}

void Model::forward(std::span<const StepItem> items, std::vector<float>& logits, std::vector<float>* final_streams) {
  Buffers& b = *buffers_;
  const int64_t D = config_.hidden_size, hc = config_.hc_mult;
  // Every check before the first op, which would leave states half-advanced.
  check_step(items);
  begin_step();
  for (const StepItem& item : items) add_to_step(item.sequence, item.position, item.tokens, item.logits, "forward");
  const StepRows rows = upload_step();
  float* X = b.X.reserve(backend_, rows.rows * hc * D);
  embed_step(rows, hc, X);
  if (dspark_) dspark_->begin_taps(rows.rows);
  for (int64_t L = 0; L < config_.num_layers; ++L) {
    run_block(blocks_[static_cast<size_t>(L)], X, rows);
    if (dspark_) dspark_->tap(X, rows.rows, L);
  }
  for (const StepItem& item : items) sequences_.at(item.sequence).position += static_cast<int64_t>(item.tokens.size());
  if (final_streams) {
    final_streams->resize(static_cast<size_t>(rows.rows * hc * D));
    backend_.copy_to_host(final_streams->data(), X, final_streams->size() * sizeof(float));
  }
  head_logits(head_, X, logits);
}

void Model::forward_mtp(std::span<const MtpItem> items, std::vector<float>& logits, int64_t index) {
  FP4SERVE_CHECK(index >= 0 && index < config_.num_mtp_layers, "MTP block {} requested; the checkpoint has {}", index,
                 config_.num_mtp_layers);
  Buffers& b = *buffers_;
  const MtpWeights& m = weights_.mtp[static_cast<size_t>(index)];
  const Block& block = blocks_[static_cast<size_t>(config_.num_layers + index)];
  const int64_t D = config_.hidden_size, hc = config_.hc_mult;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  begin_step();
  for (const MtpItem& item : items) {
    const Sequence& s = sequence(item.sequence, "forward_mtp");
    FP4SERVE_CHECK(item.streams != nullptr, "forward_mtp: sequence {} without streams", item.sequence);
    add_to_step(item.sequence, s.mtp_position, item.next_tokens, item.logits, "forward_mtp");
  }
  const StepRows rows = upload_step();
  const int64_t n = rows.rows;
  // e = enorm(embed(token)); h = hnorm(streams) per stream.
  float* e = b.embedded.reserve(backend_, n * D);
  embed_step(rows, 1, e);
  backend_.rms_norm(RmsNormParams{n, D, eps, e, mtp_enorm_[static_cast<size_t>(index)], e});
  float* h = b.streams.reserve(backend_, n * hc * D);
  {
    int64_t r = 0;
    for (const MtpItem& item : items) {
      const size_t floats = item.next_tokens.size() * static_cast<size_t>(hc * D);
      backend_.copy_to_device(h + r * hc * D, item.streams, floats * sizeof(float));
      r += static_cast<int64_t>(item.next_tokens.size());
    }
  }
  float* hn = b.projected.reserve(backend_, n * hc * D);
  backend_.rms_norm(RmsNormParams{n * hc, D, eps, h, mtp_hnorm_[static_cast<size_t>(index)], hn});
  // X = e_proj(e) broadcast over streams + h_proj(hnorm(streams)), each bf16.
  float* ep = b.block_out.reserve(backend_, n * D);
  float* X = b.X.reserve(backend_, n * hc * D);
  auto act = [&](const LinearWeight* w) {
    return numerics_.quantizes_input(w->encoding) ? ActivationQuant::kFP8Block128 : ActivationQuant::kNone;
  };
  LinearJob je, jh;
  je.weight = m.e_proj, je.x = e, je.rows = n, je.y = ep, je.act = act(m.e_proj), je.round_bf16 = true;
  jh.weight = m.h_proj, jh.x = hn, jh.rows = n * hc, jh.y = X, jh.act = act(m.h_proj), jh.round_bf16 = true;
  const LinearJob jobs[] = {je, jh};
  backend_.linear(jobs);
  backend_.add_to_streams(AddToStreamsParams{n, D, hc, ep, X});

  run_block(block, X, rows);
  for (const MtpItem& item : items) sequences_.at(item.sequence).mtp_position += static_cast<int64_t>(item.next_tokens.size());
  head_logits(mtp_heads_[static_cast<size_t>(index)], X, logits);
}

}  // namespace fp4serve
