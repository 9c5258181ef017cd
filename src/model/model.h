// DeepSeek-V4 on the CPU (dsv4-architecture.md §3): embedding, hc_mult residual
// streams through every block (mHC around attention and MoE), the final collapse,
// norm and head; plus the MTP block. One forward call runs a batch of independent
// sequences, each continuing from its own position with any number of new tokens
// (chunked prefill, one-token decode, or both in one batch).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "model/attention.h"
#include "model/moe.h"
#include "model/numerics.h"
#include "model/sequence_state.h"
#include "model/weights.h"

namespace fp4serve {

struct Checkpoint;

struct ModelOptions {
  ActQuantMode act_quant = ActQuantMode::kAuto;
  int64_t reserve_tokens = 4096;  // sequence state sized for this many positions up front
};

struct SequenceInput {
  SequenceState* state = nullptr;
  std::span<const int32_t> tokens;
  bool all_logits = false;  // logits of every new position, else of the last one
};

// For the MTP block: the main model's final residual streams of some positions of a
// sequence, and for each the next token id (DeepSeek's MTP pairs h_i with token i+1).
struct MtpInput {
  SequenceState* state = nullptr;
  std::span<const int32_t> next_tokens;
  const float* streams = nullptr;  // [next_tokens.size(), hc_mult * hidden_size]
  bool all_logits = false;
};

class Model {
 public:
  // The checkpoint must outlive the model (weights are views into it).
  Model(const Checkpoint& checkpoint, const ModelOptions& options = {});
  ~Model();

  const ModelConfig& config() const { return config_; }
  const Numerics& numerics() const { return numerics_; }

  std::unique_ptr<SequenceState> new_sequence() const;

  // Appends to `logits` one row of vocab_size floats per requested position, inputs in
  // order. If `final_streams` is given it receives every new position's residual
  // streams before the head [rows, hc_mult * hidden_size] (the MTP block's input).
  void forward(std::span<const SequenceInput> inputs, std::vector<float>& logits, std::vector<float>* final_streams = nullptr);

  // Runs MTP block `index` (throws Error if the checkpoint has none).
  void forward_mtp(std::span<const MtpInput> inputs, std::vector<float>& logits, int64_t index = 0);

 private:
  struct Block {
    const BlockWeights* weights = nullptr;
    AttentionLayer attention;
    MoeLayer moe;
  };
  struct Scratch;

  void run_block(const Block& block, float* X, int64_t rows, const int32_t* tokens, std::span<const RowSegment> segments);
  void head_logits(const HyperConnectionWeights& hc_head, const std::vector<float>& norm, const float* X,
                   std::span<const int64_t> rows, std::vector<float>& logits);

  ModelConfig config_;
  Numerics numerics_;
  ModelOptions options_;
  ModelWeights weights_;
  std::vector<Block> blocks_;  // main layers, then MTP blocks
  std::unique_ptr<Scratch> scratch_;
};

}  // namespace fp4serve
