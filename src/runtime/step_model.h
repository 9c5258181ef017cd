// The narrow interface between the scheduler and a model: sequences of tokens
// in, next-token logits out. The scheduler never sees tensors, weights or
// backends; a model (the CPU forward pass, a CUDA engine, the fake model for
// tests) is adapted to this interface with a thin wrapper.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace fp4serve::runtime {

using SequenceId = uint64_t;

// One sequence's share of a batched step: `tokens` are appended to the
// sequence's state at positions [position, position + tokens.size()). A prefill
// chunk carries many tokens, a decode step exactly one.
struct SequenceWork {
  SequenceId sequence = 0;
  int64_t position = 0;  // tokens already in the sequence's state; checked by the model
  std::span<const int32_t> tokens;
  // Whether the logits of the last new position are wanted. False for a prefill
  // chunk that is not the prompt's last, so the model may skip the LM head.
  bool want_logits = true;
};

class StepModel {
 public:
  virtual ~StepModel() = default;

  virtual int vocab_size() const = 0;
  // The longest sequence (prompt + generated tokens) the model accepts.
  virtual int64_t max_context() const = 0;

  // Per-sequence state (KV caches, compressor windows, ...). A sequence's id is
  // chosen by the caller and unique among live sequences. free_sequence releases
  // the state's memory at once: it is called when a request finishes, fails or
  // is cancelled.
  virtual void create_sequence(SequenceId id) = 0;
  virtual void free_sequence(SequenceId id) = 0;

  // Runs one batched forward step over independent sequences (each id at most
  // once). For each item i with want_logits, writes vocab_size() floats, the
  // logits of the item's last new position, to logits[i * vocab_size(), ...);
  // other rows are left untouched. Throws fp4serve::Error on a broken contract
  // (unknown id, wrong position, token out of range, context overflow).
  virtual void step(std::span<const SequenceWork> work, std::span<float> logits) = 0;

  // Bytes held by live sequence states, for the cache-usage metric.
  virtual size_t sequence_state_bytes() const = 0;
};

}  // namespace fp4serve::runtime
