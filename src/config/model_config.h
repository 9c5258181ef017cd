// The DeepSeek-V4 model shape, in DeepSeek's own terms (the ModelArgs of DeepSeek's
// inference/model.py). checkpoint/ fills it from either config.json style; model/
// and the backends read it. Nothing here knows about files or quantization.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fp4serve {

// Attention kind of a layer, from its compress ratio.
enum class AttentionKind : uint8_t {
  kSlidingWindow,        // r == 0: SWA only
  kCompressedSparse,     // r == 4 (overlapping windows) + indexer top-k: CSA
  kHeavilyCompressed,    // any other r > 0: dense over compressed entries: HCA
};

struct YarnConfig {
  double factor = 1.0;                       // rope_scaling.factor
  int64_t original_max_position = 0;         // rope_scaling.original_max_position_embeddings
  double beta_fast = 32.0;
  double beta_slow = 1.0;
};

// The speculative-decoding module a checkpoint carries under `mtp.*`.
enum class DraftKind : uint8_t {
  kNone,
  kMtp,     // the preview's classic MTP block(s): mtp.J.e_proj / h_proj / enorm / hnorm + one V4 block
  kDSpark,  // DeepSeek's DSpark drafter (V4-{Flash,Pro}-DSpark, -Flash-0731, -Pro-0813): mtp.0..S-1 V4
            // blocks with sliding-window attention only, main_proj/main_norm on stage 0, and norm,
            // hc_head_*, a Markov head and a confidence head on the last stage
};

// What the draft looks like. Filled by checkpoint/ from config.json (dspark_* keys) and the
// tensor index (which decides the kind and the stage count: config.json's
// num_nextn_predict_layers stays 1 in the DSpark releases and is never used for them).
struct DraftConfig {
  DraftKind kind = DraftKind::kNone;
  int64_t num_stages = 0;        // blocks mtp.0 .. mtp.{num_stages-1}; MTP: num_mtp_layers
  int64_t block_size = 0;        // dspark_block_size: query positions per draft step (anchor + noise); MTP: 1
  int64_t noise_token_id = -1;   // dspark_noise_token_id: fills block positions 1 .. block_size-1
  std::vector<int64_t> target_layer_ids;  // dspark_target_layer_ids: main layers whose outputs are tapped
  int64_t markov_rank = 0;       // dspark_markov_rank: rank of the Markov head (0 = none)
  int64_t sliding_window = 0;    // the draft attention's window (the config's sliding_window)
  bool has_markov_head = false;      // mtp.{S-1}.markov_head.markov_w1 / markov_w2
  bool has_confidence_head = false;  // mtp.{S-1}.confidence_head.proj [1, hidden_size + markov_rank]
  bool inferred_parameters = false;  // detected from the index alone; defaults filled in (a warning says which)
};

struct ModelConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;            // D
  int64_t num_layers = 0;             // main blocks
  int64_t num_mtp_layers = 0;         // classic MTP blocks (num_nextn_predict_layers); 0 for a DSpark draft
  int64_t num_heads = 0;              // H
  int64_t head_dim = 0;               // hd (K = V vector)
  int64_t rope_head_dim = 0;          // rd: last rd dims of each head get RoPE
  int64_t q_lora_rank = 0;
  int64_t o_lora_rank = 0;            // R, per output group
  int64_t o_groups = 0;               // G
  int64_t sliding_window = 0;         // W
  // One ratio per main layer, then one per draft block (MTP layer or DSpark stage; filled in
  // when the file has one entry per main layer only: draft ratios are always 0).
  std::vector<int64_t> compress_ratios;
  double rope_theta = 10000.0;            // layers with r == 0
  double compress_rope_theta = 160000.0;  // layers with r > 0, which also get YaRN
  YarnConfig yarn;
  int64_t max_position_embeddings = 0;

  int64_t index_n_heads = 0;
  int64_t index_head_dim = 0;
  int64_t index_topk = 0;

  int64_t n_routed_experts = 0;       // E
  int64_t n_shared_experts = 0;
  int64_t experts_per_token = 0;      // k_e
  int64_t moe_intermediate_size = 0;  // I
  int64_t num_hash_layers = 0;        // layers < this route through tid2eid
  std::string scoring_func = "sqrtsoftplus";
  bool norm_topk_prob = true;
  double routed_scaling_factor = 1.0;
  double swiglu_limit = 0.0;          // 0 = no clamp

  int64_t hc_mult = 0;                // hyper-connection streams
  int64_t hc_sinkhorn_iters = 0;
  double hc_eps = 1e-6;
  double rms_norm_eps = 1e-6;

  int64_t bos_token_id = 0;
  int64_t eos_token_id = 1;
  bool tie_word_embeddings = false;

  DraftConfig draft = {};

  // Blocks after the main layers: classic MTP layers or DSpark stages.
  int64_t num_draft_blocks() const { return draft.kind == DraftKind::kDSpark ? draft.num_stages : num_mtp_layers; }
  int64_t compress_ratio(int64_t layer) const { return compress_ratios.at(static_cast<size_t>(layer)); }
  AttentionKind attention_kind(int64_t layer) const {
    const int64_t r = compress_ratio(layer);
    if (r == 0) return AttentionKind::kSlidingWindow;
    return r == 4 ? AttentionKind::kCompressedSparse : AttentionKind::kHeavilyCompressed;
  }
  bool is_hash_layer(int64_t layer) const { return layer < num_hash_layers; }  // MTP layers never are
};

}  // namespace fp4serve
