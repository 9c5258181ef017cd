// Rotary position embedding as the CPU backend applies it (DeepSeek's inference/model.py,
// apply_rotary_emb): interleaved pairs on the last rope_dim values of a vector, angle =
// fp32 position * fp32 frequency, rotations in fp32, results bf16. The frequencies
// (with YaRN where the layer has it) come from the model as a placed table.
#pragma once

#include <cstdint>

namespace fp4serve::cpu {

class Rope {
 public:
  Rope(const float* freqs, int64_t rope_dim) : freqs_(freqs), dim_(rope_dim) {}

  // Rotates v[0..rope_dim) (the slice, not the whole head) by position p; inverse rotates back.
  void apply(float* v, int64_t position, bool inverse) const;

  // The same in two steps, so that every head of a position shares one set of cos/sin:
  // cos and sin receive rope_dim / 2 values each.
  void angles(int64_t position, float* cos, float* sin) const;
  void rotate(float* v, const float* cos, const float* sin, bool inverse) const;

  int64_t dim() const { return dim_; }

 private:
  const float* freqs_;
  int64_t dim_;
};

}  // namespace fp4serve::cpu
