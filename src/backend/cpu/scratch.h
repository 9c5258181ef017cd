// Per-step scratch buffers of the CPU ops: sized on first use and kept, so the decode
// loop does not allocate once the buffers have grown to the largest step seen.
#pragma once

#include <cstdint>
#include <vector>

namespace fp4serve::cpu {

template <typename T>
T* grow_scratch(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

}  // namespace fp4serve::cpu
