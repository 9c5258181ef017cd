// Per-sequence state a rank keeps, from the config: what context costs in memory.
// Every layer keeps a window of W raw entries; a compressed layer (ratio r > 0) adds one
// head_dim-wide entry per r tokens and keeps partial windows for its compressor; a CSA
// layer (r == 4) also keeps one index_head_dim-wide indexer key per 4 tokens. V4 has one
// shared K=V head, which every query head reads: under tensor parallelism every rank
// keeps the whole state, so this is also the per-rank figure.
//
// The engine stores these values as float32 (see runtime/engine.cpp's
// sequence_state_bytes, which reserves the same quantities for a fixed context); this
// computes the per-token rate from the config independently of it.
#pragma once

#include <cstdint>

#include "config/model_config.h"

namespace fp4serve {

inline constexpr uint64_t kStateBytesPerValue = 4;  // float32, as the engine stores state

struct ContextMemory {
  uint64_t bytes_per_sequence = 0;  // windows and compressor partial windows, whatever the length
  double bytes_per_token = 0;       // compressed entries and indexer keys, averaged over r tokens
};

// Over the main layers and the MTP layers (each has its own attention state).
ContextMemory context_memory(const ModelConfig& config);

}  // namespace fp4serve
