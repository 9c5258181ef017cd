// Sees the input of every linear a backend runs, before any activation quantization:
// how `quantize --calibrate-tokens` records per-linear activation amax. It lives here,
// below checkpoint/ (which implements it) and backend/ (which calls it), so that
// neither includes the other.
#pragma once

#include <cstdint>

#include "formats/linear_weight.h"

namespace fp4serve {

class ActivationObserver {
 public:
  virtual ~ActivationObserver() = default;
  // x: `rows` rows of weight.in_features host floats, x_stride floats apart. May be
  // called from any thread that runs a linear.
  virtual void observe(const LinearWeight& weight, const float* x, int64_t rows, int64_t x_stride) = 0;
};

}  // namespace fp4serve
