// DeepSeek-V4's forward pass, described over a Backend (DeepSeek's inference/model.py,
// Transformer.forward and MTPBlock): embedding, hc_mult residual streams through every
// block (mHC around attention and MoE), the final collapse, norm and head; plus the
// MTP block. The model decides which op runs on which buffers with which weights; the
// backend (backend/backend.h) executes. One forward call runs a batch of independent
// sequences, each continuing from its own position with any number of new tokens
// (chunked prefill, one-token decode, or both in one batch). Everything a step needs
// is checked on the host before the first op, and the only copy back is the logits.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "backend/state_pool.h"
#include "model/attention_layer.h"
#include "model/device_array.h"
#include "model/dspark_draft.h"
#include "model/moe_layer.h"
#include "model/rank_collectives.h"
#include "model/state_layout.h"
#include "model/step_item.h"
#include "model/weights.h"

namespace fp4serve {

struct ModelOptions {
  ActQuantMode act_quant = ActQuantMode::kAuto;
  int64_t context = 4096;  // positions each sequence's state is sized for, up front
};

// For the MTP block: the main model's final residual streams of some positions of a
// sequence, and for each the next token id (DeepSeek's MTP pairs h_i with token i+1).
struct MtpItem {
  SequenceId sequence = 0;
  std::span<const int32_t> next_tokens;
  const float* streams = nullptr;  // host [next_tokens.size(), hc_mult * hidden_size]
  LogitsMode logits = LogitsMode::kLast;
};

// DSpark context: positions [position, position + count) of a sequence, whose target taps
// are rows [tap_row, tap_row + count) of the last forward.
struct DraftContextItem {
  SequenceId sequence = 0;
  int64_t position = 0;
  int64_t tap_row = 0;
  int64_t count = 0;
};

// A DSpark draft block: the anchor at `position` (the sequence's context covers the
// positions before it).
struct DraftBlockItem {
  SequenceId sequence = 0;
  int64_t position = 0;
  int32_t anchor = 0;
};

class Model {
 public:
  // Places every weight on `backend` once. The backend and the maps' weights must
  // outlive the model. Throws Error naming the first missing or misshapen tensor.
  // `shard`: one rank's cut under tensor parallelism (the default: the whole model).
  Model(Backend& backend, const ModelConfig& config, const LinearMap& linears, const TensorMap& tensors,
        const ModelOptions& options = {}, const ModelShard& shard = {});
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }
  const Numerics& numerics() const { return numerics_; }
  const StateLayout& state_layout() const { return layout_; }
  int64_t context() const { return layout_.context; }

  // Sequences: each owns one state slot from creation to free_sequence.
  void create_sequence(SequenceId id);
  void free_sequence(SequenceId id);
  bool has_sequence(SequenceId id) const { return sequences_.count(id) != 0; }
  int64_t position(SequenceId id) const;      // tokens the sequence has consumed
  int64_t mtp_position(SequenceId id) const;  // tokens the MTP block has consumed
  size_t live_state_bytes() const { return pool_.live_bytes(); }

  // Appends to `logits` vocab_size floats per requested row (logit_rows), items in
  // order. If `final_streams` is given it receives every new position's residual
  // streams before the head [rows, hc_mult * hidden_size] (the MTP block's input).
  // Throws Error before running anything on a broken request (unknown or repeated
  // sequence, wrong position, no tokens, token outside the vocabulary, context overflow).
  void forward(std::span<const StepItem> items, std::vector<float>& logits, std::vector<float>* final_streams = nullptr);
  // The checks forward makes before its first op, alone: what a caller that runs the step
  // on several ranks makes once, before any rank starts (runtime/sharded_model.h).
  void check_step(std::span<const StepItem> items) const;

  // Runs MTP block `index` (throws Error if the checkpoint has none).
  void forward_mtp(std::span<const MtpItem> items, std::vector<float>& logits, int64_t index = 0);

  // The DSpark draft (model_draft.cpp); null without one. forward fills its taps.
  DsparkDraft* dspark() { return dspark_.get(); }
  // Writes the items' positions into the draft's context rings (DsparkDraft::insert_context).
  void dspark_context(std::span<const DraftContextItem> items);
  // Runs the draft block of each item (DsparkDraft::draft).
  void dspark_draft(std::span<const DraftBlockItem> items, std::vector<float>& logits, std::vector<float>& hidden);

  // Speculative decoding's rollback (model_draft.cpp). save_for_rollback keeps what the
  // next steps may overwrite of the sequence's state (window rings, compressors' partial
  // windows); roll_back returns the state to the saved position exactly (compressed entries
  // emitted since are cleared), after which the caller runs the accepted tokens again.
  void save_for_rollback(SequenceId id);
  void roll_back(SequenceId id);
  // The sequence's whole state slot, for tests.
  std::vector<float> read_state(SequenceId id);

 private:
  struct Sequence {
    StateSlot slot;
    int64_t position = 0;
    int64_t mtp_position = 0;
    DeviceBuffer saved;          // save_for_rollback's copy
    int64_t saved_position = -1;
  };
  struct Block {
    const BlockWeights* weights = nullptr;
    HcSite hc_attn, hc_ffn;
    const float* attn_norm = nullptr;
    const float* ffn_norm = nullptr;
    std::unique_ptr<AttentionLayer> attention;
    std::unique_ptr<MoeLayer> moe;
  };
  // The placed parameters of a head (the main model's, or an MTP block's).
  struct Head {
    HcSite hc;
    const float* norm = nullptr;
  };
  struct Buffers;

  Sequence& sequence(SequenceId id, const char* what);
  Block make_block(const BlockWeights& weights, int64_t layer);
  HcSite place_site(const HyperConnectionWeights& site);
  // Uploads the step's row table the caller filled in buffers_ (tokens, positions,
  // slices); head_logits uploads the logit rows.
  StepRows upload_step();
  void begin_step();
  void add_to_step(SequenceId id, int64_t position, std::span<const int32_t> tokens, LogitsMode logits, const char* what);
  void run_block(const Block& block, float* X, const StepRows& rows);
  // X [rows, copies, D] = the embedding of the step's tokens (a rank looks up its own
  // vocabulary rows and the ranks' lookups are summed).
  void embed_step(const StepRows& rows, int64_t copies, float* X);
  // The ranks' partial sums of an op's output [rows, width] joined (no-op for the whole model).
  void join_partials(float* data, int64_t rows, int64_t width);
  void head_logits(const Head& head, const float* X, std::vector<float>& logits);

  Backend& backend_;
  ModelShard shard_;
  ModelConfig config_;
  Numerics numerics_;
  ModelWeights weights_;
  StateLayout layout_;
  StatePool pool_;
  std::vector<std::vector<float>> rope_tables_;  // [0]: sliding-window layers, [1]: compressed layers
  const float* rope_freqs_[2] = {nullptr, nullptr};
  const void* embed_table_ = nullptr;
  Head head_;
  std::vector<Head> mtp_heads_;
  std::vector<const float*> mtp_enorm_, mtp_hnorm_;
  std::vector<Block> blocks_;  // main layers, then MTP blocks
  std::unordered_map<SequenceId, Sequence> sequences_;
  std::unique_ptr<Buffers> buffers_;
  std::unique_ptr<DsparkDraft> dspark_;
  std::vector<StateFill> rollback_regions_;  // offset and floats of what save_for_rollback keeps
};

}  // namespace fp4serve
