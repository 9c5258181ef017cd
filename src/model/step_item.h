// The one request struct from the scheduler down to the model: a sequence, where it
// stands, its new tokens, and which logits are wanted. runtime::Scheduler builds them,
// Engine::step and Model::forward take them as they are.
#pragma once

#include <cstdint>
#include <span>

namespace fp4serve {

// Chosen by the caller, unique among live sequences.
using SequenceId = uint64_t;

enum class LogitsMode : uint8_t {
  kNone,  // none (a prompt chunk that is not the prompt's last: the LM head is skipped)
  kLast,  // the last new position's
  kAll,   // every new position's
};

// `tokens` continue the sequence at positions [position, position + tokens.size()).
// A prefill chunk carries many tokens, a decode step one.
struct StepItem {
  SequenceId sequence = 0;
  int64_t position = 0;  // tokens already in the sequence's state; checked by the model
  std::span<const int32_t> tokens;
  LogitsMode logits = LogitsMode::kLast;
};

// Logit rows an item produces.
inline int64_t logit_rows(const StepItem& item) {
  switch (item.logits) {
    case LogitsMode::kNone: return 0;
    case LogitsMode::kLast: return 1;
    case LogitsMode::kAll: return static_cast<int64_t>(item.tokens.size());
  }
  return 0;
}

}  // namespace fp4serve
