#include "model/model.h"

#include <cstring>

#include "base/error.h"
#include "model/scratch.h"
#include "checkpoint/checkpoint.h"
#include "backend/cpu/linear.h"
#include "formats/number_formats.h"
#include "model/mhc.h"
#include "model/norms.h"
#include "model/parallel.h"

namespace fp4serve {
namespace {

void embed_row(const TensorView& embed, int64_t token, int64_t D, float* out) {
  switch (embed.dtype) {
    case DType::BF16:
      for (int64_t d = 0; d < D; ++d) out[d] = decode_bf16(embed.as<uint16_t>()[token * D + d]);
      break;
    case DType::F16:
      for (int64_t d = 0; d < D; ++d) out[d] = round_bf16(decode_f16(embed.as<uint16_t>()[token * D + d]));
      break;
    default:
      for (int64_t d = 0; d < D; ++d) out[d] = round_bf16(embed.as<float>()[token * D + d]);
      break;
  }
}

// y[t] = rms_norm(x[t]) * weight for each of `rows` rows of n.
void rms_norm_rows(const float* x, const float* weight, int64_t rows, int64_t n, float eps, float* y) {
  parallel_units(rows, rows * n * 4, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) rms_norm(x + t * n, weight, n, eps, y + t * n);
  });
}

}  // namespace

struct Model::Scratch {
  std::vector<float> X, u, xn, block_out, mixes, pre, post, comb, y, embedded, projected;
  std::vector<int32_t> tokens;
  std::vector<int64_t> logit_rows;
  std::vector<RowSegment> segments;
  AttentionScratch attention;
  MoeScratch moe;
};

Model::Model(const Checkpoint& checkpoint, const ModelOptions& options)
    : config_(checkpoint.config),
      numerics_(numerics_for(checkpoint, options.act_quant)),
      options_(options),
      weights_(resolve_weights(checkpoint)),
      scratch_(std::make_unique<Scratch>()) {
  auto make_block = [&](const BlockWeights& bw, int64_t ratio) {
    Block b{&bw, AttentionLayer{&config_, &bw.attn, &numerics_, rope_for_layer(config_, ratio)}, MoeLayer{&config_, &bw.ffn, &numerics_}};
    return b;
  };
  for (int64_t i = 0; i < config_.num_layers; ++i) blocks_.push_back(make_block(weights_.layers[i], config_.compress_ratio(i)));
  for (int64_t j = 0; j < config_.num_mtp_layers; ++j)
    blocks_.push_back(make_block(weights_.mtp[j].block, config_.compress_ratio(config_.num_layers + j)));
  for (const Block& b : blocks_) b.attention.reserve_scratch(scratch_->attention, options_.reserve_tokens);
}

Model::~Model() = default;

std::unique_ptr<SequenceState> Model::new_sequence() const {
  auto state = std::make_unique<SequenceState>();
  state->layers_.resize(blocks_.size());
  for (size_t i = 0; i < blocks_.size(); ++i) blocks_[i].attention.reset_state(state->layers_[i], options_.reserve_tokens);
  return state;
}

void Model::run_block(const Block& block, float* X, int64_t rows, const int32_t* tokens, std::span<const RowSegment> segments) {
  Scratch& s = *scratch_;
  const int64_t D = config_.hidden_size, hc = config_.hc_mult;
  const float eps = static_cast<float>(config_.rms_norm_eps), hc_eps = static_cast<float>(config_.hc_eps);
  float* u = grow_scratch(s.u, rows * D);
  float* xn = grow_scratch(s.xn, rows * D);
  float* out = grow_scratch(s.block_out, rows * D);
  float* mixes = grow_scratch(s.mixes, rows * (2 + hc) * hc);
  HcMixing mixing{hc, grow_scratch(s.pre, rows * hc), grow_scratch(s.post, rows * hc), grow_scratch(s.comb, rows * hc * hc)};

  hc_pre(block.weights->hc_attn, X, rows, D, hc, config_.hc_sinkhorn_iters, eps, hc_eps, mixes, u, mixing);
  rms_norm_rows(u, block.weights->attn_norm.data(), rows, D, eps, xn);
  block.attention.forward(xn, rows, segments, s.attention, out);
  hc_post(out, X, rows, D, mixing);

  hc_pre(block.weights->hc_ffn, X, rows, D, hc, config_.hc_sinkhorn_iters, eps, hc_eps, mixes, u, mixing);
  rms_norm_rows(u, block.weights->ffn_norm.data(), rows, D, eps, xn);
  block.moe.forward(xn, tokens, rows, s.moe, out);
  hc_post(out, X, rows, D, mixing);
}

void Model::head_logits(const HyperConnectionWeights& hc_head_weights, const std::vector<float>& norm, const float* X,
                        std::span<const int64_t> rows, std::vector<float>& logits) {
  Scratch& s = *scratch_;
  const int64_t D = config_.hidden_size, hc = config_.hc_mult, V = config_.vocab_size, n = static_cast<int64_t>(rows.size());
  const float eps = static_cast<float>(config_.rms_norm_eps);
  float* picked = grow_scratch(s.embedded, n * hc * D);
  for (int64_t i = 0; i < n; ++i) std::memcpy(picked + i * hc * D, X + rows[i] * hc * D, static_cast<size_t>(hc * D) * sizeof(float));
  float* y = grow_scratch(s.y, n * D);
  hc_head(hc_head_weights, picked, n, D, hc, eps, static_cast<float>(config_.hc_eps), grow_scratch(s.mixes, n * hc),
          grow_scratch(s.pre, n * hc), y);
  rms_norm_rows(y, norm.data(), n, D, eps, y);
  const size_t at = logits.size();
  logits.resize(at + static_cast<size_t>(n * V));
  cpu::LinearJob job;
  job.weight = weights_.head;
  job.x = y;
  job.rows = n;
  job.y = logits.data() + at;
  cpu::linear(job);
}

void Model::forward(std::span<const SequenceInput> inputs, std::vector<float>& logits, std::vector<float>* final_streams) {
  Scratch& s = *scratch_;
  const int64_t D = config_.hidden_size, hc = config_.hc_mult;
  int64_t rows = 0;
  for (const SequenceInput& in : inputs) {
    FP4SERVE_CHECK(in.state != nullptr, "forward: input without a sequence");
    FP4SERVE_CHECK(!in.tokens.empty(), "forward: a sequence with no new tokens");
    rows += static_cast<int64_t>(in.tokens.size());
  }
  int32_t* tokens = grow_scratch(s.tokens, rows);
  float* X = grow_scratch(s.X, rows * hc * D);
  s.logit_rows.clear();
  int64_t r = 0;
  for (const SequenceInput& in : inputs) {
    for (int32_t tok : in.tokens) {
      FP4SERVE_CHECK(tok >= 0 && tok < config_.vocab_size, "token id {} outside the vocabulary [0, {})", tok, config_.vocab_size);
      tokens[r] = tok;
      embed_row(weights_.embed, tok, D, X + r * hc * D);
      for (int64_t j = 1; j < hc; ++j) std::memcpy(X + (r * hc + j) * D, X + r * hc * D, static_cast<size_t>(D) * sizeof(float));
      if (in.all_logits) s.logit_rows.push_back(r);
      ++r;
    }
    if (!in.all_logits) s.logit_rows.push_back(r - 1);
  }
  for (size_t L = 0; L < static_cast<size_t>(config_.num_layers); ++L) {
    s.segments.clear();
    int64_t row = 0;
    for (const SequenceInput& in : inputs) {
      const int64_t n = static_cast<int64_t>(in.tokens.size());
      s.segments.push_back({&in.state->layers_[L], row, row + n, in.state->position_});
      row += n;
    }
    run_block(blocks_[L], X, rows, tokens, s.segments);
  }
  for (const SequenceInput& in : inputs) in.state->position_ += static_cast<int64_t>(in.tokens.size());
  if (final_streams) final_streams->assign(X, X + rows * hc * D);
  head_logits(weights_.hc_head, weights_.norm, X, s.logit_rows, logits);
}

void Model::forward_mtp(std::span<const MtpInput> inputs, std::vector<float>& logits, int64_t index) {
  FP4SERVE_CHECK(index >= 0 && index < config_.num_mtp_layers, "MTP block {} requested; the checkpoint has {}", index,
                 config_.num_mtp_layers);
  Scratch& s = *scratch_;
  const MtpWeights& m = weights_.mtp[static_cast<size_t>(index)];
  const Block& block = blocks_[static_cast<size_t>(config_.num_layers + index)];
  const int64_t D = config_.hidden_size, hc = config_.hc_mult;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  int64_t rows = 0;
  for (const MtpInput& in : inputs) rows += static_cast<int64_t>(in.next_tokens.size());
  int32_t* tokens = grow_scratch(s.tokens, rows);
  float* e = grow_scratch(s.u, rows * D);
  float* hn = grow_scratch(s.projected, rows * hc * D);
  float* X = grow_scratch(s.X, rows * hc * D);
  s.logit_rows.clear();
  int64_t r = 0;
  for (const MtpInput& in : inputs) {
    FP4SERVE_CHECK(in.state != nullptr && in.streams != nullptr, "forward_mtp: input without a sequence or streams");
    for (size_t i = 0; i < in.next_tokens.size(); ++i, ++r) {
      const int32_t tok = in.next_tokens[i];
      FP4SERVE_CHECK(tok >= 0 && tok < config_.vocab_size, "token id {} outside the vocabulary [0, {})", tok, config_.vocab_size);
      tokens[r] = tok;
      embed_row(weights_.embed, tok, D, e + r * D);
      rms_norm(e + r * D, m.enorm.data(), D, eps, e + r * D);
      for (int64_t j = 0; j < hc; ++j)
        rms_norm(in.streams + (static_cast<int64_t>(i) * hc + j) * D, m.hnorm.data(), D, eps, hn + (r * hc + j) * D);
      if (in.all_logits) s.logit_rows.push_back(r);
    }
    if (!in.all_logits) s.logit_rows.push_back(r - 1);
  }
  // X = e_proj(e) broadcast over streams + h_proj(hnorm(streams)), each bf16.
  float* ep = grow_scratch(s.block_out, rows * D);
  auto act = [&](const LinearWeight* w) {
    return numerics_.quantizes_input(w->encoding) ? cpu::ActivationQuant::kFP8Block128 : cpu::ActivationQuant::kNone;
  };
  cpu::LinearJob je, jh;
  je.weight = m.e_proj, je.x = e, je.rows = rows, je.y = ep, je.act = act(m.e_proj), je.round_bf16 = true;
  jh.weight = m.h_proj, jh.x = hn, jh.rows = rows * hc, jh.y = X, jh.act = act(m.h_proj), jh.round_bf16 = true;
  const cpu::LinearJob jobs[] = {je, jh};
  cpu::linear(jobs);
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t j = 0; j < hc; ++j)
      for (int64_t d = 0; d < D; ++d) X[(t * hc + j) * D + d] = round_bf16(X[(t * hc + j) * D + d] + ep[t * D + d]);

  s.segments.clear();
  int64_t row = 0;
  for (const MtpInput& in : inputs) {
    const int64_t n = static_cast<int64_t>(in.next_tokens.size());
    s.segments.push_back({&in.state->layers_[static_cast<size_t>(config_.num_layers + index)], row, row + n, in.state->mtp_position_});
    row += n;
  }
  run_block(block, X, rows, tokens, s.segments);
  for (const MtpInput& in : inputs) in.state->mtp_position_ += static_cast<int64_t>(in.next_tokens.size());
  head_logits(m.hc_head, m.norm, X, s.logit_rows, logits);
}

}  // namespace fp4serve
