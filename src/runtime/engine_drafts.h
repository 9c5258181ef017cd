// The engine's draft for speculative decoding (runtime/draft_source.h): DeepSeek's DSpark
// drafter (model/dspark_draft.h) or the classic MTP head as a one-token draft, over the
// engine's Model. EngineStepModel calls before_step / after_step around every target step so
// the draft sees every token the target runs:
//  - DSpark: the context rings take the target taps of every position that stays (prompt
//    chunks and plain decodes at once, a verified item's anchor and accepted drafts after
//    verification);
//  - MTP: the block consumes (final stream of position i, token i + 1) pairs as the tokens
//    become known; the last position's stream waits for its next token.
// Verification items (LogitsMode::kAll) save the sequence's rollback state first;
// finish_verification rolls back and runs the accepted prefix again (bit-identical to never
// having seen the rejected tokens).
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "model/model.h"
#include "runtime/draft_source.h"
#include "runtime/speculative_config.h"

namespace fp4serve::runtime {

class EngineDrafts : public DraftSource {
 public:
  // `spec` must have passed check_speculative_config for the model's config.
  EngineDrafts(Model& model, SpeculativeConfig spec);

  void propose(std::span<const DraftRequest> requests, DraftDrawer& drawer, std::vector<std::vector<int32_t>>& drafts) override;
  void finish_verification(std::span<const VerifiedItem> items) override;
  int64_t max_draft_tokens() const override { return spec_.num_speculative_tokens; }

  // Around the target step: `streams` are its final streams (MTP only; else empty).
  bool wants_streams() const { return spec_.method == SpeculativeMethod::kMtp; }
  void before_step(std::span<const StepItem> items);
  void after_step(std::span<const StepItem> items, const std::vector<float>& streams);
  void free_sequence(SequenceId id) { sequences_.erase(id); }

 private:
  struct Sequence {
    std::vector<float> pending_stream;  // MTP: the last position's final stream, awaiting its next token
    int64_t step_row = -1;              // first row of the sequence in the last target step
  };
  void propose_dspark(std::span<const DraftRequest> requests, DraftDrawer& drawer, std::vector<std::vector<int32_t>>& drafts);
  void propose_mtp(std::span<const DraftRequest> requests, DraftDrawer& drawer, std::vector<std::vector<int32_t>>& drafts);
  // MTP: feeds (stream of row r, token) pairs, each sequence's in order.
  void feed_mtp(const std::vector<MtpItem>& items);

  Model& model_;
  SpeculativeConfig spec_;
  std::unordered_map<SequenceId, Sequence> sequences_;
  std::vector<float> last_streams_;  // MTP: the last target step's final streams
  std::vector<float> logits_, hidden_, bias_;
};

}  // namespace fp4serve::runtime
