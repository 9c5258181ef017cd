// The narrow interface between the scheduler and a model: sequences of tokens
// in, next-token logits out. The scheduler never sees tensors, weights or
// backends; a model (the forward pass on a backend, the fake model for tests) is
// adapted to this interface with a thin wrapper. Requests are the model's own
// StepItem (model/step_item.h): one struct from the scheduler down.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/step_item.h"
#include "runtime/draft_source.h"

namespace fp4serve::runtime {

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
  // once). Items ask for LogitsMode::kLast (a decode step, a prompt's last chunk)
  // or kNone (an earlier prompt chunk: the model may skip the LM head), and with a
  // draft (draft_source() not null) kAll (a speculative item being verified). Each
  // item has rows of vocab_size() floats in `logits`, one after another in item
  // order: tokens.size() rows for kAll, else one; a kLast item's row gets the
  // logits of its last new position, kAll rows those of every new position, kNone
  // rows are left untouched. Throws fp4serve::Error on a broken contract (unknown
  // id, wrong position, token out of range, context overflow, kAll without a draft).
  virtual void step(std::span<const StepItem> work, std::span<float> logits) = 0;

  // The model's draft for speculative decoding, or null (runtime/draft_source.h).
  virtual DraftSource* draft_source() { return nullptr; }

  // Bytes held by live sequence states, for the cache-usage metric.
  virtual size_t sequence_state_bytes() const = 0;
  // Empty while the model can run steps; else why it cannot any more (every later step
  // would throw: a model split over ranks whose step failed on one rank). The server's
  // /health reads it from another thread.
  virtual std::string unusable() const { return {}; }
};

}  // namespace fp4serve::runtime
