// The model's view of a checkpoint: every tensor of DeepSeek-V4 resolved once from
// the canonical names (checkpoint/ produces the two maps; the model never sees how
// they were stored), shape-checked against the config (errors name
// the tensor), small vectors widened to fp32, projections kept as LinearWeights in
// whatever encoding they were stored.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/tensor.h"
#include "formats/linear_weight.h"
#include "config/model_config.h"

namespace fp4serve {

// Canonical name -> projection / other tensor (Checkpoint::linears, Checkpoint::tensors).
using LinearMap = std::map<std::string, LinearWeight>;
using TensorMap = std::map<std::string, TensorView>;

// mHC parameters of one site: fn [rows, hc*D] as a linear (rows = (2+hc)*hc, or hc for
// the head), base [rows], scale [3] (or [1] for the head).
struct HyperConnectionWeights {
  LinearWeight fn;
  std::vector<float> base, scale;
};

struct CompressorWeights {
  int64_t ratio = 0;
  int64_t dim = 0;       // d: 512 (main) or index_head_dim (indexer)
  bool overlap = false;  // ratio == 4: two series, coff = 2
  const LinearWeight* wkv = nullptr;    // [coff*d, D]
  const LinearWeight* wgate = nullptr;  // [coff*d, D]
  std::vector<float> ape;               // [ratio, coff*d]
  std::vector<float> norm;              // [d]
  int64_t coff() const { return overlap ? 2 : 1; }
};

struct IndexerWeights {
  const LinearWeight* wq_b = nullptr;          // [n_ih*ihd, q_lora]
  const LinearWeight* weights_proj = nullptr;  // [n_ih, D]
  CompressorWeights compressor;
};

struct AttentionWeights {
  int64_t ratio = 0;
  const LinearWeight* wq_a = nullptr;
  std::vector<float> q_norm;
  const LinearWeight* wq_b = nullptr;
  const LinearWeight* wkv = nullptr;
  std::vector<float> kv_norm;
  const LinearWeight* wo_a = nullptr;  // [G*R, H*hd/G]
  const LinearWeight* wo_b = nullptr;  // [D, G*R]
  std::vector<float> attn_sink;        // [H]
  std::optional<CompressorWeights> compressor;
  std::optional<IndexerWeights> indexer;
};

struct ExpertWeights {
  const LinearWeight* w1 = nullptr;  // gate [I, D]
  const LinearWeight* w2 = nullptr;  // down [D, I]
  const LinearWeight* w3 = nullptr;  // up   [I, D]
};

struct MoeWeights {
  bool hash = false;
  const LinearWeight* gate = nullptr;  // [E, D], run in fp32
  std::vector<float> bias;             // [E] (learned routing)
  std::vector<int32_t> tid2eid;        // [V, k_e] (hash routing)
  std::vector<ExpertWeights> experts;
  // [E]: 1 where the expert is an all-zero stand-in for one another rank holds
  // (ResolveOptions::absent_experts); empty when every expert is here.
  std::vector<uint8_t> absent;
  ExpertWeights shared;
};

struct BlockWeights {
  std::vector<float> attn_norm, ffn_norm;
  HyperConnectionWeights hc_attn, hc_ffn;
  AttentionWeights attn;
  MoeWeights ffn;
};

struct MtpWeights {
  const LinearWeight* e_proj = nullptr;
  const LinearWeight* h_proj = nullptr;
  std::vector<float> enorm, hnorm, norm;
  HyperConnectionWeights hc_head;
  BlockWeights block;
};

// A DSpark draft (DeepSeek-V4-Flash-0731's mtp.0 .. mtp.{S-1}): V4 blocks with
// sliding-window attention only; main_proj / main_norm on stage 0; norm, hc_head and the
// Markov and confidence heads on the last stage.
struct DsparkWeights {
  const LinearWeight* main_proj = nullptr;  // [D, taps * D]
  std::vector<float> main_norm;             // [D]
  std::vector<BlockWeights> stages;
  std::vector<float> norm;                  // [D]
  HyperConnectionWeights hc_head;
  TensorView markov_w1;                      // [V, r] an embedding (absent: no Markov head)
  const LinearWeight* markov_w2 = nullptr;   // [V, r] (null: no Markov head)
  const LinearWeight* confidence = nullptr;  // [1, D + r] (null: no confidence head)
};

struct ModelWeights {
  TensorView embed;  // [V, D] BF16 / F16 / F32
  const LinearWeight* head = nullptr;
  std::vector<float> norm;
  HyperConnectionWeights hc_head;
  std::vector<BlockWeights> layers;
  std::vector<MtpWeights> mtp;
  std::optional<DsparkWeights> dspark;
};

// A rank's cut of the model (tensor parallelism, src/parallel/rank_weights.h): the config
// then holds the rank's head count, output groups and intermediate size, and these say
// what else departs from the checkpoint's shapes.
struct ResolveOptions {
  int64_t embed_rows = -1;  // rows of embed.weight (-1: vocab_size)
  int64_t head_rows = -1;   // rows of head (-1: vocab_size)
  int64_t shared_intermediate = -1;  // the shared expert's (-1: moe_intermediate_size)
  // By block prefix ("layers.3.", "mtp.0."): what stands in for that block's routed experts
  // absent from the maps (held by another rank under expert parallelism): all-zero weights
  // of the experts' encoding and shape, so each adds exactly 0. Null: every expert required.
  const std::map<std::string, ExpertWeights>* absent_experts = nullptr;
};

// Throws Error naming the first missing or misshapen tensor.
ModelWeights resolve_weights(const ModelConfig& config, const LinearMap& linears, const TensorMap& tensors,
                             const ResolveOptions& options = {});

// Checks the config values the forward pass relies on (positive sizes, divisibility).
void validate_config(const ModelConfig& config);

}  // namespace fp4serve
