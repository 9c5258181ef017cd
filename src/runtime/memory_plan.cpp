#include "runtime/memory_plan.h"

#include <algorithm>

#include "base/error.h"

namespace fp4serve {
namespace {

std::string gib(uint64_t bytes) { return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0)); }

}  // namespace

uint64_t step_workspace_bytes(const ModelConfig& c, int64_t step_tokens) {
  const int64_t D = c.hidden_size, hc = c.hc_mult;
  const int64_t per_row = 2 * hc * D + 3 * D + (2 + hc) * hc + hc + hc * hc      // streams, u, xn, out, mixing
                          + 2 * c.q_lora_rank + 2 * c.num_heads * c.head_dim + c.head_dim  // qa, qr, q, o, kv
                          + 4 * c.head_dim + c.index_n_heads * (c.index_head_dim + 1) + 4 * c.index_head_dim  // compressors, indexer
                          + c.o_groups * c.o_lora_rank                                // z
                          + (c.experts_per_token + 1) * (3 * c.moe_intermediate_size + D) + c.experts_per_token * D  // experts
                          + c.n_routed_experts + c.vocab_size                         // gate logits, logits
                          + (c.draft.kind == DraftKind::kDSpark ? static_cast<int64_t>(c.draft.target_layer_ids.size()) * D : 0);  // DSpark taps
  return static_cast<uint64_t>(std::max<int64_t>(step_tokens, 1)) * static_cast<uint64_t>(per_row) * sizeof(float) +
         (uint64_t{64} << 20);
}

MemoryPlan plan_memory(const Backend& backend, const ModelConfig& config, const LinearMap& linears, const TensorMap& tensors,
                       uint64_t slot_bytes, int64_t sequences, int64_t step_tokens, double utilization) {
  MemoryPlan plan;
  for (const auto& [name, w] : linears) plan.weight_bytes += backend.placement_bytes(w);
  for (const auto& [name, t] : tensors) plan.weight_bytes += backend.placement_bytes(t);
  plan.state_bytes = slot_bytes * static_cast<uint64_t>(std::max<int64_t>(sequences, 0));
  plan.workspace_bytes = step_workspace_bytes(config, step_tokens);
  plan.device = backend.memory_info();
  const double reserved = static_cast<double>(plan.device.total_bytes) * (1.0 - utilization);
  const double available = static_cast<double>(plan.device.free_bytes) - reserved;
  plan.available = available > 0 ? static_cast<uint64_t>(available) : 0;
  return plan;
}

void check_fits(const MemoryPlan& plan, const std::string& device, int64_t sequences, int64_t context, double utilization) {
  FP4SERVE_CHECK(plan.needed() <= plan.available,
                 "the model does not fit on {}: it needs {} (weights {} + state {} for {} sequence(s) of {} positions + "
                 "workspace {}), {} is available ({} free of {} total, leaving {:.0f}% of the device to others at "
                 "--gpu-memory-utilization {}); lower --max-model-len or --max-num-seqs, or raise the utilization",
                 device, gib(plan.needed()), gib(plan.weight_bytes), gib(plan.state_bytes), sequences, context,
                 gib(plan.workspace_bytes), gib(plan.available), gib(plan.device.free_bytes), gib(plan.device.total_bytes),
                 (1.0 - utilization) * 100.0, utilization);
}

}  // namespace fp4serve
