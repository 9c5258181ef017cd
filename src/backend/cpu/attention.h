// The attention core of DeepSeek-V4 on the CPU (DeepSeek's inference/model.py,
// Attention.forward between its projections): the per-row, per-head work
// (attention_heads) and the stateful walk over each sequence (attention_sequences:
// compressors, indexer, window ring, attention with sinks, inverse RoPE). Params and
// semantics: backend/backend.h.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace fp4serve::cpu {

void attention_heads(const AttentionHeadsParams& p);

// Scratch of the walk, kept between calls; grown once to the state's capacity, so that
// decoding never allocates.
struct AttentionScratch {
  std::vector<float> scores, attn_scores, attn_acc, cos, sin;
  std::vector<int32_t> selected;
  std::vector<const float*> keys;
};

void attention_sequences(const AttentionSequencesParams& p, const StepRows& rows, AttentionScratch& scratch);

// DSpark's non-causal block attention (backend/backend.h BlockAttentionParams).
void block_attention(const BlockAttentionParams& p, const StepRows& rows, AttentionScratch& scratch);

}  // namespace fp4serve::cpu
