// The narrow interface between the model and everything that drives it (CLI,
// server): open a model directory, create sequences, and run a batched step, a list
// of (sequence, new tokens) -> logits of the last position or of every position.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config/model_config.h"
#include "model/numerics.h"
#include "model/sequence_state.h"

namespace fp4serve {

struct EngineOptions {
  ActQuantMode act_quant = ActQuantMode::kAuto;
  int64_t reserve_tokens = 4096;  // per-sequence state sized up front for this many positions
  bool show_progress = true;      // while loading
};

struct StepRequest {
  SequenceState* sequence = nullptr;
  std::span<const int32_t> tokens;  // new tokens, continuing the sequence
  bool all_logits = false;          // logits of every new position, else only of the last
};

class Engine {
 public:
  // Loads and validates the checkpoint, then builds the model. Throws Error.
  static std::unique_ptr<Engine> open(const std::string& model_dir, const EngineOptions& options = {});
  ~Engine();

  const ModelConfig& config() const;
  std::unique_ptr<SequenceState> new_sequence() const;
  // Bytes one sequence's state holds: everything new_sequence() sizes up front for
  // reserve_tokens positions (sliding-window ring, compressor windows and entries).
  // Within reserve_tokens positions a state never grows.
  size_t sequence_state_bytes() const;
  int64_t reserve_tokens() const;
  // Appends vocab_size floats per requested position to `logits`, requests in order.
  void step(std::span<const StepRequest> requests, std::vector<float>& logits);

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fp4serve
