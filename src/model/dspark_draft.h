// DeepSeek's DSpark drafter (DeepSeek-V4-Flash-0731 / -Pro-0813 / -DSpark, `mtp.0 .. mtp.{S-1}`;
// DeepSeek's inference/model.py, DSparkBlock / DSparkAttention / Transformer.forward_spec, and the
// DSpark paper, deepseek-ai/DeepSpec DSpark_paper.pdf, section 3) described over a Backend, so every
// backend runs it:
//  - target taps: for every token the target runs, the plain mean over the hc streams of the
//    output of each layer of dspark_target_layer_ids (Model::forward calls tap after each layer);
//  - context: main_x = main_norm(main_proj(taps)); per stage kv = kv_norm(wkv(main_x)), RoPE,
//    the QAT simulation, written into that stage's ring (slot = position % window) of the
//    sequence's state, for accepted positions only;
//  - the block: [anchor, noise x (block_size - 1)] at the positions after the context, through
//    the stages (mHC, attention over ring + the whole block with no causal mask and a sink,
//    MoE), the draft's own hc_head and norm, the target's head: base logits per position, and
//    the pre-norm hidden the confidence head reads;
//  - the Markov head (a low-rank bias from the previous token, applied left to right by the
//    caller as it samples) and the confidence logit.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "config/model_config.h"
#include "model/attention_layer.h"
#include "model/device_array.h"
#include "model/moe_layer.h"
#include "model/state_layout.h"
#include "model/weights.h"

namespace fp4serve {

// Positions [position, position + count) of a sequence whose target taps are rows
// [tap_row, tap_row + count) of the last target forward.
struct DraftContextRun {
  float* slot = nullptr;
  int64_t position = 0;
  int64_t tap_row = 0;
  int64_t count = 0;
};

// One sequence's draft block: its context rings hold the positions before `position`; the
// anchor (the last token the target emitted) sits at `position`.
struct DraftBlockRun {
  float* slot = nullptr;
  int64_t position = 0;
  int32_t anchor = 0;
};

class DsparkDraft {
 public:
  // Places the draft's weights. Everything passed in must outlive the draft; `head` and the
  // embedding are the target's (DSpark shares them).
  DsparkDraft(Backend& backend, const ModelConfig& config, const DsparkWeights& weights, const LinearWeight* head,
              const void* embed_table, DType embed_dtype, const Numerics& numerics, const StateLayout& layout);
  ~DsparkDraft();
  DsparkDraft(const DsparkDraft&) = delete;
  DsparkDraft& operator=(const DsparkDraft&) = delete;

  int64_t block_size() const { return config_.draft.block_size; }
  bool has_markov_head() const { return weights_.markov_w2 != nullptr; }
  bool has_confidence_head() const { return weights_.confidence != nullptr; }

  // The target forward's side: sized for a step of `rows`, then after main layer `layer` ran
  // on X [rows, hc, D], its hc-mean goes into that layer's column of the taps (if tapped).
  void begin_taps(int64_t rows);
  void tap(const float* X, int64_t rows, int64_t layer);

  // The last target forward's taps [rows, taps * D] on the host (tests check them).
  std::vector<float> read_taps();

  // Writes every stage's context ring for the runs (only each run's last `window` positions
  // matter and only those are computed). Reads the taps of the last target forward.
  void insert_context(std::span<const DraftContextRun> runs);

  // Runs the block of every run: appends block_size rows per run of base logits (before the
  // Markov bias, [V] each) to `logits` and of the pre-norm hidden ([D] each) to `hidden`.
  void draft(std::span<const DraftBlockRun> runs, std::vector<float>& logits, std::vector<float>& hidden);

  // The Markov bias of each previous token: appends [V] per entry, markov_w2 . markov_w1[prev]
  // in fp32 (the reference keeps markov_w2 in fp32). Throws Error without a Markov head.
  void markov_bias(std::span<const int32_t> prev, std::vector<float>& bias);

  // The confidence head's logit for a drafted position: proj . [hidden ; markov_w1[prev]]
  // (hidden: the block row's pre-norm hidden). Throws Error without a confidence head.
  double confidence_logit(std::span<const float> hidden, int32_t prev) const;

 private:
  struct Stage;
  struct Buffers;
  void run_stage(const Stage& stage, float* X, const StepRows& rows);
  StepRows upload_rows(const std::vector<int32_t>& tokens, const std::vector<int64_t>& positions,
                       const std::vector<SequenceSlice>& slices);

  Backend& backend_;
  const ModelConfig& config_;
  const DsparkWeights& weights_;
  const LinearWeight* head_;
  const void* embed_table_;
  DType embed_dtype_;
  const Numerics& numerics_;
  int64_t ring_base_ = 0, ring_floats_ = 0;
  std::vector<float> rope_table_;
  const float* rope_freqs_ = nullptr;
  const float* main_norm_ = nullptr;
  const float* norm_ = nullptr;
  HcSite hc_head_;
  const void* markov_table_ = nullptr;
  std::vector<float> confidence_weights_;  // host [D + r], for confidence_logit
  std::vector<int64_t> tap_column_;        // per main layer: its column in the taps, or -1
  std::vector<std::unique_ptr<Stage>> stages_;
  std::unique_ptr<Buffers> buffers_;
};

}  // namespace fp4serve
