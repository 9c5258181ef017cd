#include "parallel/context_memory.h"

namespace fp4serve {

ContextMemory context_memory(const ModelConfig& c) {
  ContextMemory m;
  // A compressor keeps kv and score partial windows of coff * ratio rows of coff * dim.
  auto partial_windows = [](int64_t ratio, int64_t dim) {
    const int64_t coff = ratio == 4 ? 2 : 1;
    return static_cast<uint64_t>(2 * (coff * ratio) * (coff * dim));
  };
  uint64_t values_per_sequence = 0;
  double values_per_token = 0;
  for (int64_t i = 0; i < c.num_layers + c.num_mtp_layers; ++i) {
    const int64_t r = c.compress_ratio(i);
    values_per_sequence += static_cast<uint64_t>(c.sliding_window * c.head_dim);
    if (r > 0) {
      values_per_sequence += partial_windows(r, c.head_dim);
      values_per_token += static_cast<double>(c.head_dim) / static_cast<double>(r);
    }
    if (r == 4) {
      values_per_sequence += partial_windows(4, c.index_head_dim);
      values_per_token += static_cast<double>(c.index_head_dim) / 4.0;
    }
  }
  m.bytes_per_sequence = values_per_sequence * kStateBytesPerValue;
  m.bytes_per_token = values_per_token * static_cast<double>(kStateBytesPerValue);
  return m;
}

}  // namespace fp4serve
