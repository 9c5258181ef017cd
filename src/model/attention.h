// One attention layer of DeepSeek-V4 over the rows of a step (dsv4-architecture.md
// §3.4): the q path (wq_a, q_norm, wq_b, per-head norm, RoPE), the single K=V head
// (wkv, kv_norm, RoPE, FP8 QAT simulation), the compressor and indexer, attention
// with a sink over the window plus compressed entries, inverse RoPE, and the grouped
// output projection. Token-parallel work runs over all rows at once; the stateful
// part (ring, compressors, indexer, attention) walks each sequence token by token,
// which is the reference's prefill and decode alike.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backend/cpu/linear.h"
#include "config/model_config.h"
#include "model/numerics.h"
#include "model/rope.h"
#include "model/sequence_state.h"
#include "model/weights.h"

namespace fp4serve {

// A run of consecutive rows that continue one sequence from `start_position`.
struct RowSegment {
  AttentionState* state = nullptr;
  int64_t row_begin = 0, row_end = 0;
  int64_t start_position = 0;
};

struct AttentionScratch {
  std::vector<float> qa, qr, q, kv, comp_a, comp_z, qi, index_weights, index_a, index_z, o, z, scores, attn_scores, attn_acc;
  std::vector<int32_t> selected;
  std::vector<const float*> keys;
  std::vector<int64_t> positions;
  std::vector<float> rope_cos, rope_sin;
  std::vector<cpu::LinearJob> jobs;
};

struct AttentionLayer {
  const ModelConfig* config = nullptr;
  const AttentionWeights* weights = nullptr;
  const Numerics* numerics = nullptr;
  RopeTable rope;

  // x [rows, D] (bf16 values) -> out [rows, D] (bf16 values).
  void forward(const float* x, int64_t rows, std::span<const RowSegment> segments, AttentionScratch& scratch, float* out) const;

  // Sizes the scratch for sequences of up to reserve_tokens positions, so that decoding
  // within that length never allocates (sequence_state.h says the same of the state).
  void reserve_scratch(AttentionScratch& scratch, int64_t reserve_tokens) const;

  // Fresh per-sequence state for this layer.
  void reset_state(AttentionState& state, int64_t reserve_tokens) const;
};

}  // namespace fp4serve
