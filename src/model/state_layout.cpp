#include "model/state_layout.h"

#include <cmath>

#include "base/error.h"

namespace fp4serve {

StateLayout state_layout(const ModelConfig& c, int64_t context) {
  FP4SERVE_CHECK(context >= 1, "state: a context of {} positions (must be >= 1)", context);
  StateLayout s;
  s.context = context;
  int64_t at = 0;
  // A compressor's partial windows (kv and score, coff*ratio x coff*dim each) and room
  // for every entry `context` positions emit.
  auto compressor = [&](int64_t ratio, int64_t dim) {
    const int64_t coff = ratio == 4 ? 2 : 1, cells = (coff * ratio) * (coff * dim);
    CompressorStateLayout l;
    l.kv = at;
    l.score = at + cells;
    l.entries = at + 2 * cells;
    l.capacity = context / ratio + 1;
    at = l.entries + l.capacity * dim;
    s.initial_values.push_back({l.score, cells, -INFINITY});
    return l;
  };
  const int64_t blocks = c.num_layers + c.num_mtp_layers;
  for (int64_t i = 0; i < blocks; ++i) {
    const int64_t ratio = c.compress_ratio(i);
    AttentionStateLayout layer;
    layer.window = at;
    at += c.sliding_window * c.head_dim;
    if (ratio > 0) layer.compressor = compressor(ratio, c.head_dim);
    if (ratio == 4) layer.index_compressor = compressor(4, c.index_head_dim);
    s.layers.push_back(layer);
  }
  s.slot_floats = at;
  return s;
}

}  // namespace fp4serve
