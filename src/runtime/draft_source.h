// The scheduler's view of a model's draft (speculative decoding): propose tokens after each
// decoding sequence's last token, then hear which of them the target accepted. A StepModel
// with a draft returns one from StepModel::draft_source(); the draft's state and the target's
// rollback stay behind this interface.
//
// A speculative step of a sequence at `position` (tokens in its state) with last token
// `anchor`: propose() drafts up to max_tokens tokens x_0..; the scheduler runs the step item
// [anchor, x_0, ..] with LogitsMode::kAll (the model keeps what it needs to roll back), verifies,
// and calls finish_verification with how many drafts were accepted: the model's state then
// holds exactly [anchor, x_0 .. x_{accepted-1}] after the position, as if it never saw the rest.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/step_item.h"

namespace fp4serve::runtime {

struct DraftRequest {
  SequenceId sequence = 0;
  int64_t position = 0;   // tokens in the sequence's state
  int32_t anchor = 0;     // the last emitted token, not yet in the state
  int64_t max_tokens = 0;  // the most drafts to return (>= 1)
};

// Samples each drafted position for the scheduler (the sequence's sampler decides how).
class DraftDrawer {
 public:
  virtual ~DraftDrawer() = default;
  // Position k (0-based) of request `request`: the draft's logits [vocab]; returns the token.
  virtual int32_t draw(size_t request, int64_t k, std::span<const float> logits) = 0;
};

struct VerifiedItem {
  SequenceId sequence = 0;
  int64_t position = 0;               // where the verified item started
  std::span<const int32_t> tokens;    // [anchor, x_0, ..] as run
  int64_t accepted = 0;               // drafts accepted (tokens[1 .. accepted])
};

class DraftSource {
 public:
  virtual ~DraftSource() = default;
  // Drafts for each request into drafts[i] (between 0 and max_tokens tokens: the draft may
  // trim by confidence), drawing every position through `drawer`.
  virtual void propose(std::span<const DraftRequest> requests, DraftDrawer& drawer,
                       std::vector<std::vector<int32_t>>& drafts) = 0;
  // After the verifying step: rolls every item's target state back past its accepted prefix.
  virtual void finish_verification(std::span<const VerifiedItem> items) = 0;
  // The most drafts one proposal gives (num_speculative_tokens).
  virtual int64_t max_draft_tokens() const = 0;
};

}  // namespace fp4serve::runtime
