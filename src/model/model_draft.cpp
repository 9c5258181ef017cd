// Model's speculative-decoding side: the DSpark draft's entry points by sequence id, and the
// save / roll back of a sequence's state around a verification step.
#include "base/error.h"
#include "config/state_size.h"
#include "model/model.h"

namespace fp4serve {

void Model::dspark_context(std::span<const DraftContextItem> items) {
  FP4SERVE_CHECK(dspark_ != nullptr, "the checkpoint has no DSpark draft");
  std::vector<DraftContextRun> runs;
  for (const DraftContextItem& item : items) {
    Sequence& s = sequence(item.sequence, "DSpark context");
    FP4SERVE_CHECK(item.position >= 0 && item.count >= 0 && item.position + item.count <= s.position,
                   "DSpark context: sequence {} at position {} has no target taps for positions [{}, {})", item.sequence,
                   s.position, item.position, item.position + item.count);
    runs.push_back({s.slot.data(), item.position, item.tap_row, item.count});
  }
  dspark_->insert_context(runs);
}

void Model::dspark_draft(std::span<const DraftBlockItem> items, std::vector<float>& logits, std::vector<float>& hidden) {
  FP4SERVE_CHECK(dspark_ != nullptr, "the checkpoint has no DSpark draft");
  std::vector<DraftBlockRun> runs;
  for (const DraftBlockItem& item : items) {
    Sequence& s = sequence(item.sequence, "DSpark draft");
    // The block writes no state, so its positions may run past the context (the caller
    // verifies only what fits).
    FP4SERVE_CHECK(item.position == s.position, "DSpark draft: sequence {} is at position {}, the block says {}", item.sequence,
                   s.position, item.position);
    runs.push_back({s.slot.data(), item.position, item.anchor});
  }
  dspark_->draft(runs, logits, hidden);
}

void Model::save_for_rollback(SequenceId id) {
  Sequence& s = sequence(id, "save_for_rollback");
  int64_t floats = 0;
  for (const StateFill& r : rollback_regions_) floats += r.count;
  if (s.saved.bytes() < static_cast<size_t>(floats) * sizeof(float)) s.saved = backend_.allocate(static_cast<size_t>(floats) * sizeof(float));
  float* at = s.saved.as<float>();
  for (const StateFill& r : rollback_regions_) {
    backend_.copy_on_device(at, s.slot.data() + r.offset, static_cast<size_t>(r.count) * sizeof(float));
    at += r.count;
  }
  s.saved_position = s.position;
}

void Model::roll_back(SequenceId id) {
  Sequence& s = sequence(id, "roll_back");
  FP4SERVE_CHECK(s.saved_position >= 0 && s.position >= s.saved_position, "roll_back: sequence {} has nothing saved", id);
  const float* at = s.saved.as<float>();
  for (const StateFill& r : rollback_regions_) {
    backend_.copy_on_device(s.slot.data() + r.offset, at, static_cast<size_t>(r.count) * sizeof(float));
    at += r.count;
  }
  // Entries emitted since the save: (tokens / ratio) of them exist after `tokens` tokens.
  const std::vector<AttentionStateSize> sizes = attention_state_sizes(config_);
  for (size_t i = 0; i < static_cast<size_t>(config_.num_layers); ++i) {
    const AttentionStateLayout& l = layout_.layers[i];
    for (const auto& [size, comp] :
         {std::pair{sizes[i].compressor, l.compressor}, std::pair{sizes[i].index_compressor, l.index_compressor}}) {
      if (size.ratio == 0) continue;
      const int64_t from = s.saved_position / size.ratio, to = s.position / size.ratio;
      if (to > from) backend_.fill(s.slot.data() + comp.entries + from * size.dim, (to - from) * size.dim, 0.0f);
    }
  }
  s.position = s.saved_position;
  s.saved_position = -1;
}

std::vector<float> Model::read_state(SequenceId id) {
  Sequence& s = sequence(id, "read_state");
  std::vector<float> out(static_cast<size_t>(layout_.slot_floats));
  backend_.copy_to_host(out.data(), s.slot.data(), out.size() * sizeof(float));
  return out;
}

}  // namespace fp4serve
