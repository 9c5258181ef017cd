#include "config/state_size.h"

#include "base/error.h"

namespace fp4serve {

int64_t CompressorStateSize::partial_window_floats() const {
  if (ratio == 0) return 0;
  const int64_t overlap = ratio == 4 ? 2 : 1;
  return (overlap * ratio) * (overlap * dim);
}

int64_t CompressorStateSize::entry_capacity(int64_t context) const { return ratio == 0 ? 0 : context / ratio + 1; }

int64_t CompressorStateSize::floats(int64_t context) const {
  return 2 * partial_window_floats() + entry_capacity(context) * dim;
}

int64_t AttentionStateSize::floats(int64_t context) const {
  return window_floats + compressor.floats(context) + index_compressor.floats(context);
}

std::vector<AttentionStateSize> attention_state_sizes(const ModelConfig& c) {
  const int64_t count = c.num_layers + c.num_mtp_layers;
  FP4SERVE_CHECK(static_cast<int64_t>(c.compress_ratios.size()) >= count,
                 "config: compress_ratios has {} entries for {} layers and {} MTP layers", c.compress_ratios.size(),
                 c.num_layers, c.num_mtp_layers);
  std::vector<AttentionStateSize> blocks;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t ratio = c.compress_ratio(i);
    AttentionStateSize b;
    b.window_floats = c.sliding_window * c.head_dim;
    if (ratio > 0) b.compressor = {ratio, c.head_dim};
    if (ratio == 4) b.index_compressor = {4, c.index_head_dim};
    blocks.push_back(b);
  }
  return blocks;
}

int64_t draft_ring_floats(const ModelConfig& c) {
  if (c.draft.kind != DraftKind::kDSpark) return 0;
  return c.draft.num_stages * c.draft.sliding_window * c.head_dim;
}

int64_t state_floats(const ModelConfig& c, int64_t context) {
  FP4SERVE_CHECK(context >= 1, "state: a context of {} positions (must be >= 1)", context);
  int64_t floats = draft_ring_floats(c);
  for (const AttentionStateSize& b : attention_state_sizes(c)) floats += b.floats(context);
  return floats;
}

StateRate state_rate(const ModelConfig& c) {
  uint64_t fixed = static_cast<uint64_t>(draft_ring_floats(c));
  double per_token = 0;
  for (const AttentionStateSize& b : attention_state_sizes(c)) {
    // floats(0) is what a block keeps before any entry: the window, partial windows, spares.
    fixed += static_cast<uint64_t>(b.floats(0));
    for (const CompressorStateSize& comp : {b.compressor, b.index_compressor})
      if (comp.ratio > 0) per_token += static_cast<double>(comp.dim) / static_cast<double>(comp.ratio);
  }
  return {fixed * kStateBytesPerValue, per_token * static_cast<double>(kStateBytesPerValue)};
}

}  // namespace fp4serve
