// Rotary position embedding of DeepSeek-V4 (dsv4-architecture.md §3.1): interleaved
// pairs on the last rope_dim values of a vector; base rope_theta without YaRN on
// sliding-window layers, compress_rope_theta with YaRN on layers with a compressor.
// Angles are fp32 position * fp32 frequency, rotations in fp32, results bf16.
#pragma once

#include <cstdint>
#include <vector>

#include "config/model_config.h"

namespace fp4serve {

class RopeTable {
 public:
  RopeTable(int64_t rope_dim, double base, const YarnConfig* yarn);  // yarn null: plain RoPE
  // Every frequency, for tests.
  const std::vector<float>& frequencies() const { return freqs_; }
  // Rotates v[0..rope_dim) (the slice, not the whole head) by position p; inverse rotates back.
  void apply(float* v, int64_t position, bool inverse) const;

  // The same in two steps, so that every head of a position shares one set of cos/sin:
  // cos and sin receive rope_dim / 2 values each.
  void angles(int64_t position, float* cos, float* sin) const;
  void rotate(float* v, const float* cos, const float* sin, bool inverse) const;

 private:
  int64_t dim_;
  std::vector<float> freqs_;
};

// The table a layer of compress ratio r uses.
RopeTable rope_for_layer(const ModelConfig& config, int64_t ratio);

}  // namespace fp4serve
