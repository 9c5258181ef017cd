// The fit check before a model is placed on a backend (as vLLM's
// --gpu-memory-utilization): the bytes the backend will hold for the weights, the state
// of the requested sequences at the requested context, and a stated step workspace,
// against what the device has. A model or context that does not fit is refused before
// anything is uploaded, with the numbers; never an out-of-memory error mid-run.
#pragma once

#include <cstdint>
#include <string>

#include "backend/backend.h"
#include "config/model_config.h"
#include "model/weights.h"

namespace fp4serve {

struct MemoryPlan {
  uint64_t weight_bytes = 0;     // as the backend stores them (CPU: 0, it reads the mapped files)
  uint64_t state_bytes = 0;      // slot bytes x sequences
  uint64_t workspace_bytes = 0;  // step buffers, see step_workspace_bytes
  uint64_t needed() const { return weight_bytes + state_bytes + workspace_bytes; }
  // The device's share this run may use: free - total * (1 - utilization), i.e. what is
  // free after leaving (1 - utilization) of the whole device to everything else.
  uint64_t available = 0;
  MemoryInfo device;
};

// The model's step buffers for `step_tokens` rows: residual streams and their mHC
// mixing, the attention projections and output, the experts' hidden rows (routed
// assignments + shared), the logits; 4 bytes a value, plus 64 MiB for the backends'
// own scratch (quantized activations, attention scores).
uint64_t step_workspace_bytes(const ModelConfig& config, int64_t step_tokens);

// Fills a plan; `utilization` in (0, 1].
MemoryPlan plan_memory(const Backend& backend, const ModelConfig& config, const LinearMap& linears, const TensorMap& tensors,
                       uint64_t slot_bytes, int64_t sequences, int64_t step_tokens, double utilization);

// Throws Error naming every number when plan.needed() > plan.available.
void check_fits(const MemoryPlan& plan, const std::string& device, int64_t sequences, int64_t context, double utilization);

}  // namespace fp4serve
