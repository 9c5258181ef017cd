// One rank's weights of a sharded model, read as the shard plan cuts them (shard_plan.h):
// the rank's slices by byte range (shard_reader.h, its own copies), the replicated
// tensors as the checkpoint's mapped views (nothing of them is read until used), and
// the config a Model for this rank is built with (its heads, output groups and
// intermediate size; the vocabulary stays whole, the model knows its rows).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "checkpoint/checkpoint.h"
#include "io/ranged_read.h"
#include "model/rank_collectives.h"
#include "model/weights.h"
#include "parallel/shard_plan.h"
#include "parallel/shard_reader.h"

namespace fp4serve {

struct RankWeights {
  int rank = 0;
  ModelConfig config;
  LinearMap linears;  // canonical names; experts other ranks own are absent
  TensorMap tensors;  // embed.weight: this rank's vocabulary rows and one row of zeros
  int64_t vocab_begin = 0, vocab_end = 0;
  int64_t shared_intermediate = 0;  // its columns of the shared expert (config: the routed experts')
  // Under expert parallelism, by block prefix, the all-zero expert that stands in for the
  // other ranks' experts of that block: one per encoding and shape (the MTP block's experts
  // may be stored unlike the main layers'), owned here.
  std::map<std::string, ExpertWeights> absent_experts;
  std::map<std::string, std::unique_ptr<std::array<LinearWeight, 3>>> absent_storage;

  // The model's view of this cut (collectives supplied by the caller).
  ModelShard shard(RankCollectives* collectives) const {
    return ModelShard{collectives, vocab_begin, vocab_end, shared_intermediate,
                      absent_experts.empty() ? nullptr : &absent_experts};
  }
};

// Throws Error naming the tensor when the plan leaves this rank without a part of a
// split tensor (more ranks than its heads, groups, columns or vocabulary rows), or when
// layers disagree on the rank's head count or intermediate size.
// `read` fetches the slices' bytes (shard_reader.h: ranged_reads from the files, or
// copy_runs for a checkpoint in memory); it is called from the rank's thread.
RankWeights read_rank_weights(const Checkpoint& checkpoint, const ShardPlan& plan, int rank, const ReadRuns& read);

// The vocabulary rows of the head each rank holds (the gather's column counts).
std::vector<int64_t> vocab_columns(const ShardPlan& plan);

}  // namespace fp4serve
