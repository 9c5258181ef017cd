// One attention layer of DeepSeek-V4 as the model describes it to a backend (DeepSeek's
// inference/model.py, Attention.forward): the q path (wq_a, q_norm, wq_b), the single
// K=V head (wkv), the compressors' and indexer's projections, then the backend's
// attention_heads (per-head norms, RoPE, QAT simulation) and attention_sequences (the
// stateful walk), and the grouped output projection (wo_a per group, wo_b).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "config/model_config.h"
#include "model/device_array.h"
#include "model/weights.h"

namespace fp4serve {

// The step buffers every attention layer shares.
struct AttentionBuffers {
  DeviceArray<float> qa, qr, q, kv, comp_a, comp_z, index_q, index_weights, index_a, index_z, o, z;
  std::vector<LinearJob> jobs;
};

class AttentionLayer {
 public:
  // Places the layer's small parameters; weights, numerics and rope_freqs (the layer's
  // placed frequency table) must outlive the layer. `partial_output`: a tensor-parallel
  // rank's layer, whose output is its heads' share of the sum, kept in fp32 until the
  // ranks' shares are added (then rounded to bf16 as the whole layer's output is).
  AttentionLayer(Backend& backend, const ModelConfig& config, const AttentionWeights& weights, const Numerics& numerics,
                 const float* rope_freqs, const AttentionStateLayout& state, bool partial_output = false);

  // x [rows, D] (bf16 values) -> out [rows, D] (bf16 values); advances the states of the
  // step's sequences (rows.slices) by their rows.
  void forward(Backend& backend, const float* x, const StepRows& rows, AttentionBuffers& buffers, float* out) const;

 private:
  ActivationQuant act(const LinearWeight* w) const;

  const ModelConfig& config_;
  const AttentionWeights& weights_;
  const Numerics& numerics_;
  const float* q_norm_ = nullptr;
  bool partial_output_ = false;
  // Everything of attention_heads / attention_sequences that does not change per step.
  AttentionHeadsParams heads_;
  AttentionSequencesParams sequences_;
};

}  // namespace fp4serve
