// A model split over ranks in this process (tensor parallelism, optionally expert
// parallelism; docs/PARALLELISM.md): one thread per rank, each with its own backend
// (CPU, or CUDA on its own GPU), its own weights read by range from the checkpoint
// (parallel/rank_weights.h) and its own Model, joined by a communicator (NCCL between
// distinct GPUs when the build has it, else the in-process one). Every call runs on all
// ranks at once; ranks hold the same sequences at the same positions, so the host-side
// checks of a step fail alike on every rank, before any collective; forward makes them
// once on the calling thread, before any rank starts.
//
// A rank that fails mid-step (an allocation, a device error, a state the others do not
// share) would leave the others waiting in their next collective forever. Instead its
// failure aborts the communicator (Communicator::abort: the in-process group wakes its
// waiters, NCCL's ncclCommAbort ends the kernels waiting for peers), every rank returns,
// and the step throws an Error naming the failing rank and its message. The group is then
// unusable (an aborted NCCL communicator is gone, and the ranks' states may disagree): every
// later step throws at once, naming the failure, until the process is restarted. The
// server answers 500 for the failed step's requests and for every later one.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
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

  // fn(rank, model) on every rank's thread at once, for work without collectives
  // (creating and freeing sequences); returns when all have returned, then rethrows the
  // error of the lowest rank that threw.
  void on_every_rank(const std::function<void(int rank, Model& model)>& fn);

  // fn(rank, model) on every rank's thread at once, for work with collectives: the first
  // rank to throw aborts the communicator, so that the others' collectives throw instead of
  // waiting for it; then throws an Error naming that rank and its message, and the model
  // refuses every later step. Throws at once if an earlier step failed so.
  void run_step(const std::function<void(int rank, Model& model)>& fn);

  // Model::forward on every rank; `logits` receives rank 0's (every rank gathers them all).
  // A broken request (Model::check_step) throws before any rank starts, leaving the group usable.
  void forward(std::span<const StepItem> items, std::vector<float>& logits);

  // Empty while the ranks can run steps; else why not (the failed rank and its message).
  // Safe from any thread (the server's health check reads it while a step runs).
  std::string broken() const;

 private:
  struct Rank;
  // fn(rank) on every rank's thread, as on_every_rank (also while the models are built).
  void run_all(const std::function<void(int rank)>& fn);

  ShardPlan plan_;
  std::vector<std::unique_ptr<Rank>> ranks_;
  mutable std::mutex broken_mutex_;
  std::string broken_;  // guarded by broken_mutex_
};

}  // namespace fp4serve
