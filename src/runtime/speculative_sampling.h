// Speculative sampling (Leviathan et al. 2023, Chen et al. 2023; the DSpark paper, section 2.1): a
// drafted token x drawn from the draft distribution q is accepted with probability
// min(1, p(x) / q(x)) where p is the target's distribution at that position; at the first
// rejection the emitted token is drawn from normalize(max(0, p - q)); when every draft is
// accepted a bonus token is drawn from the target at the position after. The emitted tokens
// then follow the target's distribution exactly. p and q are what the sequence's sampler
// makes of the logits (temperature, top-k/p, min-p, penalties, logit bias), so greedy
// requests (one-hot p and q) accept a draft exactly when it is the target's argmax.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/sampler.h"

namespace fp4serve::runtime {

// A drafted position: its token and the distribution it was drawn from.
struct DraftedToken {
  int32_t token = 0;
  std::vector<TokenProbability> q;
};

// Draws a draft token after `pending` (the earlier drafted tokens of this step) from the
// draft's logits, with the sampler's settings and its speculative random stream.
DraftedToken draw_draft(SequenceSampler& sampler, std::span<const float> logits, std::span<const int32_t> pending);

struct Verification {
  int64_t accepted = 0;               // drafted tokens accepted
  std::vector<SampledToken> emitted;  // the accepted drafts, then the correction or bonus token
};

// target_logits: drafts.size() + 1 rows of `vocab` (the target at the anchor and at each
// drafted position). Commits every emitted token to the sampler.
Verification verify_drafts(SequenceSampler& sampler, std::span<const float> target_logits, int64_t vocab,
                           std::span<const DraftedToken> drafts);

}  // namespace fp4serve::runtime
