// What `fp4serve plan` says: per-rank weight bytes, state bytes per token of context,
// how much context fits in a given GPU memory, and the plan's notes; as text for
// people and as one JSON object for tools.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "config/state_size.h"
#include "parallel/shard_plan.h"

namespace fp4serve {

struct RankSummary {
  int rank = 0;
  uint64_t weight_bytes = 0;      // everything the rank reads and holds
  uint64_t replicated_bytes = 0;  // of which tensors every rank holds whole
  double kv_bytes_per_token = 0;
  int64_t context_tokens = -1;  // tokens of state that fit beside the weights; -1 without a memory size
};

struct PlanSummary {
  ParallelConfig parallel;
  uint64_t checkpoint_bytes = 0;  // all stored tensors, as stored
  StateRate context;  // per sequence, from config/state_size.h
  std::vector<RankSummary> ranks;
  std::optional<uint64_t> gpu_memory_bytes;
  bool fits = false;  // with a memory size: every rank holds its weights and one sequence's fixed state
  std::vector<std::string> notes;
};

PlanSummary summarize_plan(const Checkpoint& checkpoint, const ShardPlan& plan,
                           std::optional<uint64_t> gpu_memory_bytes);

// {tensor_parallel_size, expert_parallel, checkpoint_bytes, ranks: [{rank, weight_bytes,
// kv_bytes_per_token, replicated_bytes[, context_tokens]}], state_bytes_per_sequence,
// notes[, gpu_memory_bytes, fits]}
nlohmann::json plan_json(const PlanSummary& summary);
std::string plan_text(const PlanSummary& summary, const std::string& model_dir);

}  // namespace fp4serve
