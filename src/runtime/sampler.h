// Picks the next token from logits: greedy at temperature 0, else softmax at the
// temperature restricted to the smallest set of tokens whose probability reaches
// top_p (nucleus), drawn with a seeded generator (same seed, same tokens).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace fp4serve {

struct SamplingParams {
  float temperature = 0.0f;
  float top_p = 1.0f;
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);  // throws Error on out-of-range parameters
  int32_t sample(std::span<const float> logits);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

}  // namespace fp4serve
