// SplitMix64's finalizer: a cheap, well-mixed 64-bit permutation, for the
// sampler's per-token random numbers and the fake model's history hash.
#pragma once

#include <cstdint>

namespace fp4serve::runtime {

constexpr uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

}  // namespace fp4serve::runtime
