// A model split over ranks in this process (tensor parallelism, optionally expert
// parallelism; docs/PARALLELISM.md): one thread per rank, each with its own backend
// (CPU, or CUDA on its own GPU), its own weights read by range from the checkpoint
// (parallel/rank_weights.h) and its own Model, joined by a communicator (NCCL between
// distinct GPUs when the build has it, else the in-process one). Every call runs on all
// ranks at once; ranks hold the same sequences at the same positions, so the host-side
// checks of a step fail alike on every rank, before any collective.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "checkpoint/checkpoint.h"
#include "model/model.h"
#include "parallel/shard_plan.h"

namespace fp4serve {

struct ShardedModelOptions {
  ParallelConfig parallel;
  DeviceKind device = DeviceKind::kCpu;
  // CUDA: the GPU of each rank (empty: rank r on GPU r). Ranks may share a GPU (then they
  // talk through the host, in-process).
  std::vector<int> devices;
  ModelOptions model;  // act_quant and context, the same on every rank
  // The fit check each rank makes on its own device before placing its weights.
  int64_t max_sequences = 1;
  int64_t max_step_tokens = 4096;
  double memory_utilization = 0.9;
};

class ShardedModel {
 public:
  // Plans the split (Error naming the tensor when it cannot be), then on every rank's
  // thread starts its backend, reads its weights, checks the fit and builds its model.
  ShardedModel(const Checkpoint& checkpoint, const ShardedModelOptions& options);
  ~ShardedModel();
  ShardedModel(const ShardedModel&) = delete;
  ShardedModel& operator=(const ShardedModel&) = delete;

  int size() const { return static_cast<int>(ranks_.size()); }
  const ShardPlan& plan() const { return plan_; }
  // Rank r's model and backend, for what the host reads (positions, numerics, description);
  // running one rank alone would wait forever in its first collective.
  const Model& rank_model(int rank) const;
  const Backend& rank_backend(int rank) const;

  // fn(rank, model) on every rank's thread at once; returns when all have returned, then
  // rethrows the error of the lowest rank that threw.
  void on_every_rank(const std::function<void(int rank, Model& model)>& fn);

  // Model::forward on every rank; `logits` receives rank 0's (every rank gathers them all).
  void forward(std::span<const StepItem> items, std::vector<float>& logits);

 private:
  struct Rank;
  // fn(rank) on every rank's thread, as on_every_rank (also while the models are built).
  void run_all(const std::function<void(int rank)>& fn);

  ShardPlan plan_;
  std::vector<std::unique_ptr<Rank>> ranks_;
};

}  // namespace fp4serve
