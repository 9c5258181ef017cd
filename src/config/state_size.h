// How much state one sequence keeps between steps, from the config alone. The one set of
// rules behind every figure: model/state_layout.cpp lays a slot out by it (the engine sizes
// memory and the state pool allocates with that layout), `fp4serve plan` and `fp4serve
// inspect` report it. Per attention block (main layers, then classic MTP blocks: the blocks
// the engine runs) a window ring of raw KV, and for compressed layers the compressor's
// partial windows and emitted entries, for CSA layers the indexer compressor's too
// (DeepSeek's inference/model.py keeps the same in Attention.kv_cache and
// Compressor.kv_state / score_state / kv_cache). V4 has one shared K=V head that every
// query head reads: under tensor parallelism every rank keeps the whole state.
#pragma once

#include <cstdint>
#include <vector>

#include "config/model_config.h"

namespace fp4serve {

inline constexpr uint64_t kStateBytesPerValue = sizeof(float);  // the engine keeps state in float32

// One compressor: kv and score partial windows of overlap*ratio rows of overlap*dim each
// (CSA windows, r == 4, overlap by half: overlap 2), then room for its entries.
struct CompressorStateSize {
  int64_t ratio = 0;  // 0: no compressor
  int64_t dim = 0;

  int64_t partial_window_floats() const;          // each of kv and score
  int64_t entry_capacity(int64_t context) const;  // the context / ratio entries `context` positions emit, and one spare
  int64_t floats(int64_t context) const;
};

// One attention block: its window of sliding_window raw entries and its compressors.
struct AttentionStateSize {
  int64_t window_floats = 0;
  CompressorStateSize compressor;        // layers with ratio > 0
  CompressorStateSize index_compressor;  // CSA layers (ratio 4): the indexer's keys
  int64_t floats(int64_t context) const;
};

// Every block that keeps state, in slot order.
std::vector<AttentionStateSize> attention_state_sizes(const ModelConfig& config);

// A DSpark draft's context rings (DeepSeek's inference/model.py, DSparkAttention's window
// KV): per stage one ring of draft.sliding_window raw entries of head_dim, written only for
// accepted positions. 0 without a DSpark draft.
int64_t draft_ring_floats(const ModelConfig& config);

// Exact floats of one sequence's slot when it holds up to `context` positions (>= 1).
int64_t state_floats(const ModelConfig& config, int64_t context);

// The same as a fixed part and a per-token rate, for reports that do not fix a context:
// state_floats(context) = fixed + sum over compressors of floor(context / r) * dim, so
// bytes_per_sequence + context * bytes_per_token is exact when every ratio divides the
// context and at most one entry per compressor above it otherwise.
struct StateRate {
  uint64_t bytes_per_sequence = 0;  // windows, partial windows, spare entries: whatever the length
  double bytes_per_token = 0;       // dim / r per compressor
};
StateRate state_rate(const ModelConfig& config);

}  // namespace fp4serve
