#include "model/state_layout.h"

#include <cmath>

#include "config/state_size.h"

namespace fp4serve {

StateLayout state_layout(const ModelConfig& c, int64_t context) {
  StateLayout s;
  s.context = context;
  s.slot_floats = state_floats(c, context);  // checks the context
  int64_t at = 0;
  // A compressor's partial windows (kv, then score) and its entries, in that order.
  auto compressor = [&](const CompressorStateSize& size) {
    const int64_t cells = size.partial_window_floats();
    CompressorStateLayout l;
    l.kv = at;
    l.score = at + cells;
    l.entries = at + 2 * cells;
    l.capacity = size.entry_capacity(context);
    at += size.floats(context);
    s.initial_values.push_back({l.score, cells, -INFINITY});
    return l;
  };
  for (const AttentionStateSize& block : attention_state_sizes(c)) {
    AttentionStateLayout layer;
    layer.window = at;
    at += block.window_floats;
    if (block.compressor.ratio > 0) layer.compressor = compressor(block.compressor);
    if (block.index_compressor.ratio > 0) layer.index_compressor = compressor(block.index_compressor);
    s.layers.push_back(layer);
  }
  if (c.draft.kind == DraftKind::kDSpark) {
    s.draft_rings = at;
    s.draft_ring_floats = c.draft.sliding_window * c.head_dim;
    at += draft_ring_floats(c);
  }
  return s;
}

std::vector<StateFill> rollback_regions(const ModelConfig& c, const StateLayout& layout) {
  std::vector<StateFill> regions;
  const std::vector<AttentionStateSize> sizes = attention_state_sizes(c);
  for (size_t i = 0; i < static_cast<size_t>(c.num_layers); ++i) {
    const AttentionStateLayout& l = layout.layers[i];
    regions.push_back({l.window, sizes[i].window_floats, 0.0f});
    for (const auto& [size, comp] : {std::pair{sizes[i].compressor, l.compressor}, std::pair{sizes[i].index_compressor, l.index_compressor}})
      if (size.ratio > 0) regions.push_back({comp.kv, 2 * size.partial_window_floats(), 0.0f});
  }
  return regions;
}

}  // namespace fp4serve
