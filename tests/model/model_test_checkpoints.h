// Header-only (test folders compile only *_test.cpp files).
// The tiny configs the forward-pass tests run (hidden 128, every layer kind), and their random
// checkpoints in memory from the one generator (src/checkpoint/random_checkpoint.h).
#pragma once

#include <cstdint>
#include <vector>

#include "checkpoint/random_checkpoint.h"
#include "checkpoint/test_model.h"

namespace fp4serve::testing {

// `compress_ratios` of the main layers, the first `hash_layers` hash-routed, `mtp_layers` (0 or 1)
// classic MTP blocks.
inline ModelConfig tiny_config(std::vector<int64_t> compress_ratios, int64_t hash_layers, int64_t mtp_layers) {
  ModelConfig c = test_model_config("tiny");
  c.vocab_size = 256;
  c.hidden_size = 128;
  c.num_layers = static_cast<int64_t>(compress_ratios.size());
  c.compress_ratios = compress_ratios;
  c.num_heads = 4;
  c.head_dim = 128;
  c.rope_head_dim = 64;
  c.q_lora_rank = 128;
  c.o_lora_rank = 128;
  c.o_groups = 2;
  c.sliding_window = 8;
  c.index_n_heads = 4;
  c.index_head_dim = 128;
  c.index_topk = 3;
  c.n_routed_experts = 4;
  c.experts_per_token = 2;
  c.moe_intermediate_size = 128;
  c.num_hash_layers = hash_layers;
  c.swiglu_limit = 1.0;
  return with_draft(c, mtp_layers > 0 ? DraftKind::kMtp : DraftKind::kNone);
}

// Every linear in `encodings`' encoding (kBF16, kNative: FP8 block-128 + MXFP4 experts, kNvfp4),
// values from the seeded masters.
inline Checkpoint random_checkpoint(const ModelConfig& config, OutputLayout encodings, uint64_t seed) {
  RandomCheckpointOptions options;
  options.encodings = encodings;
  options.seed = seed;
  return fp4serve::random_checkpoint(config, options);
}

}  // namespace fp4serve::testing
