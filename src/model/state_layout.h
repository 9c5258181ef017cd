// What one sequence carries between steps, as one flat slot of floats: per attention
// layer (main layers, then MTP blocks) the window ring of raw KV, and for compressed
// layers the compressor's partial windows (kv, score) and emitted entries, for CSA
// layers the indexer compressor's too (DeepSeek's inference/model.py keeps the same in
// Attention.kv_cache and Compressor.kv_state / score_state / kv_cache); then a DSpark
// draft's context rings (DSparkAttention's window KV). The sizes come
// from config/state_size.h, the rules every state figure uses; this places them: the
// model addresses slots with it, the engine sizes memory with it, the state pool
// initializes slots with it.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "backend/state_pool.h"
#include "config/model_config.h"

namespace fp4serve {

struct StateLayout {
  int64_t context = 0;  // positions a slot holds (compressor entries are sized for it)
  std::vector<AttentionStateLayout> layers;  // main layers, then MTP blocks
  // DSpark's context rings, after the attention blocks: stage s's [window, head_dim] ring at
  // draft_rings + s * draft_ring_floats (-1: no DSpark draft).
  int64_t draft_rings = -1;
  int64_t draft_ring_floats = 0;
  int64_t slot_floats = 0;
  // Regions a fresh slot holds at a value other than 0: every score array at -inf
  // (an empty window position weighs nothing in the softmax pooling).
  std::vector<StateFill> initial_values;

  size_t slot_bytes() const { return static_cast<size_t>(slot_floats) * sizeof(float); }
};

// The layout for sequences of up to `context` positions.
StateLayout state_layout(const ModelConfig& config, int64_t context);

// What running more tokens overwrites in place (speculative decoding saves it before a
// verification): every main layer's window ring and compressors' partial windows (kv, score).
// Compressed entries are only appended (their count follows from the position) and a DSpark
// draft's rings and the MTP blocks' state take accepted positions only, so none is listed.
std::vector<StateFill> rollback_regions(const ModelConfig& config, const StateLayout& layout);

}  // namespace fp4serve
