#include "runtime/engine_drafts.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"

namespace fp4serve::runtime {

EngineDrafts::EngineDrafts(Model& model, SpeculativeConfig spec) : model_(model), spec_(spec) {
  FP4SERVE_CHECK(spec_.method != SpeculativeMethod::kDSpark || model_.dspark() != nullptr, "speculation: the model has no DSpark draft");
  FP4SERVE_CHECK(spec_.method != SpeculativeMethod::kMtp || model_.config().num_mtp_layers >= 1,
                 "speculation: the model has no MTP block");
}

void EngineDrafts::before_step(std::span<const StepItem> items) {
  for (const StepItem& item : items)
    if (item.logits == LogitsMode::kAll) model_.save_for_rollback(item.sequence);
}

void EngineDrafts::after_step(std::span<const StepItem> items, const std::vector<float>& streams) {
  const int64_t width = model_.config().hc_mult * model_.config().hidden_size;
  std::vector<DraftContextItem> context;
  // MTP pairs of the items that stay whole (not verification items): their storage lives here
  // until feed_mtp has run.
  std::vector<std::vector<float>> pair_streams;
  std::vector<MtpItem> pairs;
  int64_t row = 0;
  bool verifying = false;
  pair_streams.reserve(items.size());
  for (const StepItem& item : items) {
    const int64_t n = static_cast<int64_t>(item.tokens.size());
    Sequence& s = sequences_[item.sequence];
    s.step_row = row;
    if (item.logits == LogitsMode::kAll) {
      verifying = true;
    } else if (spec_.method == SpeculativeMethod::kDSpark) {
      context.push_back({item.sequence, item.position, row, n});
    } else {
      // (stream of position i, token i + 1) for every position whose next token is known now.
      std::vector<float>& buf = pair_streams.emplace_back(s.pending_stream);
      buf.insert(buf.end(), streams.begin() + row * width, streams.begin() + (row + n - 1) * width);
      const std::span<const int32_t> next = s.pending_stream.empty() ? item.tokens.subspan(1) : item.tokens;
      if (!next.empty()) pairs.push_back({item.sequence, next, buf.data(), LogitsMode::kNone});
      s.pending_stream.assign(streams.begin() + (row + n - 1) * width, streams.begin() + (row + n) * width);
    }
    row += n;
  }
  if (!context.empty()) model_.dspark_context(context);
  if (!pairs.empty()) feed_mtp(pairs);
  if (verifying && spec_.method == SpeculativeMethod::kMtp) last_streams_ = streams;
}

void EngineDrafts::feed_mtp(const std::vector<MtpItem>& items) {
  std::vector<float> none;
  model_.forward_mtp(items, none);
}

void EngineDrafts::finish_verification(std::span<const VerifiedItem> items) {
  const int64_t width = model_.config().hc_mult * model_.config().hidden_size;
  std::vector<DraftContextItem> context;
  std::vector<MtpItem> pairs;
  std::vector<StepItem> replays;
  for (const VerifiedItem& v : items) {
    const int64_t drafted = static_cast<int64_t>(v.tokens.size()) - 1;
    FP4SERVE_CHECK(v.accepted >= 0 && v.accepted <= drafted, "speculation: {} of {} drafts accepted", v.accepted, drafted);
    Sequence& s = sequences_.at(v.sequence);
    if (spec_.method == SpeculativeMethod::kDSpark) {
      context.push_back({v.sequence, v.position, s.step_row, v.accepted + 1});
    } else {
      const float* rows = last_streams_.data() + s.step_row * width;
      if (v.accepted > 0) pairs.push_back({v.sequence, v.tokens.subspan(1, static_cast<size_t>(v.accepted)), rows, LogitsMode::kNone});
      s.pending_stream.assign(rows + v.accepted * width, rows + (v.accepted + 1) * width);
    }
    if (v.accepted < drafted)
      replays.push_back({v.sequence, v.position, v.tokens.first(static_cast<size_t>(v.accepted + 1)), LogitsMode::kNone});
  }
  // The context reads the verifying step's taps: before the replays run the target again.
  if (!context.empty()) model_.dspark_context(context);
  if (!pairs.empty()) feed_mtp(pairs);
  for (const StepItem& r : replays) model_.roll_back(r.sequence);
  if (!replays.empty()) {
    std::vector<float> none;
    model_.forward(replays, none);
  }
}

void EngineDrafts::propose(std::span<const DraftRequest> requests, DraftDrawer& drawer, std::vector<std::vector<int32_t>>& drafts) {
  drafts.assign(requests.size(), {});
  if (requests.empty()) return;
  if (spec_.method == SpeculativeMethod::kDSpark) propose_dspark(requests, drawer, drafts);
  else propose_mtp(requests, drawer, drafts);
}

void EngineDrafts::propose_mtp(std::span<const DraftRequest> requests, DraftDrawer& drawer, std::vector<std::vector<int32_t>>& drafts) {
  std::vector<MtpItem> items;
  for (const DraftRequest& r : requests) {
    Sequence& s = sequences_.at(r.sequence);
    FP4SERVE_CHECK(!s.pending_stream.empty(), "speculation: sequence {} has no target position for the MTP head", r.sequence);
    items.push_back({r.sequence, std::span<const int32_t>(&r.anchor, 1), s.pending_stream.data(), LogitsMode::kLast});
  }
  logits_.clear();
  model_.forward_mtp(items, logits_);
  const size_t V = static_cast<size_t>(model_.config().vocab_size);
  for (size_t i = 0; i < requests.size(); ++i) {
    sequences_.at(requests[i].sequence).pending_stream.clear();  // the pair (stream, anchor) is consumed
    drafts[i].push_back(drawer.draw(i, 0, std::span<const float>(logits_.data() + i * V, V)));
  }
}

void EngineDrafts::propose_dspark(std::span<const DraftRequest> requests, DraftDrawer& drawer,
                                  std::vector<std::vector<int32_t>>& drafts) {
  DsparkDraft& draft = *model_.dspark();
  const int64_t B = draft.block_size(), D = model_.config().hidden_size;
  const size_t V = static_cast<size_t>(model_.config().vocab_size);
  std::vector<DraftBlockItem> items;
  for (const DraftRequest& r : requests) items.push_back({r.sequence, r.position, r.anchor});
  logits_.clear();
  hidden_.clear();
  model_.dspark_draft(items, logits_, hidden_);
  // Left to right: the Markov bias of each position needs the token drawn before it.
  std::vector<int32_t> prev;
  std::vector<size_t> active;
  for (size_t i = 0; i < requests.size(); ++i) prev.push_back(requests[i].anchor);
  std::vector<float> row(V);
  for (int64_t k = 0; k < B; ++k) {
    active.clear();
    for (size_t i = 0; i < requests.size(); ++i) {
      if (k >= std::min(B, requests[i].max_tokens) || static_cast<int64_t>(drafts[i].size()) < k) continue;
      if (spec_.confidence_threshold > 0) {
        // c_k depends on the tokens before x_k only, so trimming here keeps sampling lossless.
        const std::span<const float> h(hidden_.data() + (i * B + k) * D, static_cast<size_t>(D));
        const double c = 1.0 / (1.0 + std::exp(-draft.confidence_logit(h, prev[i])));
        if (c < spec_.confidence_threshold) continue;
      }
      active.push_back(i);
    }
    if (active.empty()) break;
    std::vector<int32_t> active_prev;
    for (size_t i : active) active_prev.push_back(prev[i]);
    bias_.clear();
    if (draft.has_markov_head()) draft.markov_bias(active_prev, bias_);
    for (size_t a = 0; a < active.size(); ++a) {
      const size_t i = active[a];
      const float* base = logits_.data() + (i * B + k) * V;
      for (size_t v = 0; v < V; ++v) row[v] = bias_.empty() ? base[v] : base[v] + bias_[a * V + v];
      const int32_t x = drawer.draw(i, k, row);
      drafts[i].push_back(x);
      prev[i] = x;
    }
  }
}

}  // namespace fp4serve::runtime
