#include "model/numerics.h"

#include "checkpoint/checkpoint.h"

namespace fp4serve {

Numerics numerics_for(const Checkpoint& checkpoint, ActQuantMode mode) {
  Numerics n;
  if (mode == ActQuantMode::kOff) return n;
  for (const auto& [name, w] : checkpoint.linears) {
    if (w.encoding == WeightEncoding::kFP8Block || w.encoding == WeightEncoding::kMXFP4) {
      n.fp8_activations = true;
      n.qat_simulation = true;
      break;
    }
  }
  return n;
}

}  // namespace fp4serve
