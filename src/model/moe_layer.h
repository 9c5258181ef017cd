// One MoE FFN of DeepSeek-V4 as the model describes it to a backend (DeepSeek's
// inference/model.py, MoE): the gate's routing (learned bias, or tid2eid on hash
// layers), the routed experts and the shared expert, in one coarse op.
#pragma once

#include <vector>

#include "backend/backend.h"
#include "config/model_config.h"
#include "model/weights.h"

namespace fp4serve {

class MoeLayer {
 public:
  // Places the layer's small parameters; weights and numerics must outlive the layer.
  MoeLayer(Backend& backend, const ModelConfig& config, const MoeWeights& weights, const Numerics& numerics);

  // x [rows, D] (bf16 values), tokens [rows] (device; hash routing) -> out [rows, D].
  void forward(Backend& backend, const float* x, const int32_t* tokens, int64_t rows, float* out) const;

 private:
  std::vector<ExpertLinears> routed_;
  MoeParams params_;  // everything but the step's rows and buffers
};

}  // namespace fp4serve
