#include "runtime/engine.h"

#include <cstdio>

#include "backend/cuda_probe.h"
#include "base/error.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/progress_bar.h"
#include "model/model.h"
#include "model/state_layout.h"
#include "runtime/memory_plan.h"
#include "runtime/sharded_model.h"

namespace fp4serve {

bool parse_device_choice(std::string_view text, DeviceChoice* out) {
  if (text == "auto") *out = DeviceChoice::kAuto;
  else if (text == "cpu") *out = DeviceChoice::kCpu;
  else if (text == "cuda") *out = DeviceChoice::kCuda;
  else return false;
  return true;
}

struct Engine::Impl {
  // Destroyed in reverse: the model (its slots and buffers) before the backend, the
  // backend (its copies of the weights) before the checkpoint's mapped files.
  Checkpoint checkpoint;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
  std::unique_ptr<ShardedModel> sharded;  // instead of backend and model, under tensor parallelism
  // The model the host reads positions and numerics from (rank 0's when sharded).
  const Model& lead() const { return sharded ? sharded->rank_model(0) : *model; }
};

namespace {

std::unique_ptr<ShardedModel> open_sharded(const Checkpoint& checkpoint, const EngineOptions& options, int64_t step_tokens) {
  ShardedModelOptions so;
  so.parallel = ParallelConfig{options.tensor_parallel_size, options.expert_parallel};
  so.device = options.device == DeviceChoice::kCuda || (options.device == DeviceChoice::kAuto && cuda_device_count() > 0)
                  ? DeviceKind::kCuda
                  : DeviceKind::kCpu;
  so.model = ModelOptions{options.act_quant, options.reserve_tokens};
  so.max_sequences = options.max_sequences;
  so.max_step_tokens = step_tokens;
  so.memory_utilization = options.memory_utilization;
  auto sharded = std::make_unique<ShardedModel>(checkpoint, so);
  if (options.announce_device)
    std::fprintf(stderr, "device: %d ranks (tensor parallel%s), each %s\n", sharded->size(),
                 options.expert_parallel ? ", expert parallel" : "", sharded->rank_backend(0).description().c_str());
  return sharded;
}

}  // namespace

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

std::unique_ptr<Engine> Engine::open(const std::string& model_dir, const EngineOptions& options) {
  FP4SERVE_CHECK(options.reserve_tokens >= 1, "engine: reserve_tokens {} must be >= 1", options.reserve_tokens);
  FP4SERVE_CHECK(options.memory_utilization > 0.0 && options.memory_utilization <= 1.0,
                 "--gpu-memory-utilization {} must be in (0, 1]", options.memory_utilization);
  FP4SERVE_CHECK(options.tensor_parallel_size >= 1, "--tensor-parallel-size {}: must be at least 1",
                 options.tensor_parallel_size);
  auto impl = std::make_unique<Impl>();
  const int64_t step_tokens = options.max_step_tokens > 0 ? options.max_step_tokens : options.reserve_tokens;
  if (options.tensor_parallel_size > 1 || options.expert_parallel) {
    // Each rank reads its own bytes by range: no page-in of the whole checkpoint first.
    LoadOptions lo;
    lo.show_progress = options.show_progress;
    lo.page_in = false;
    impl->checkpoint = load_checkpoint(model_dir, lo);
    impl->sharded = open_sharded(impl->checkpoint, options, step_tokens);
    return std::unique_ptr<Engine>(new Engine(std::move(impl)));
  }
  switch (options.device) {
    case DeviceChoice::kAuto: impl->backend = make_auto_backend(); break;
    case DeviceChoice::kCpu: impl->backend = make_backend(DeviceKind::kCpu); break;
    case DeviceChoice::kCuda: impl->backend = make_backend(DeviceKind::kCuda); break;
  }
  if (options.announce_device) std::fprintf(stderr, "device: %s\n", impl->backend->description().c_str());

  LoadOptions lo;
  lo.show_progress = options.show_progress;
  impl->checkpoint = load_checkpoint(model_dir, lo);
  const Checkpoint& ckpt = impl->checkpoint;

  const StateLayout layout = state_layout(ckpt.config, options.reserve_tokens);
  uint64_t sequence_bytes = layout.slot_bytes();
  if (options.speculative)
    for (const StateFill& r : rollback_regions(ckpt.config, layout)) sequence_bytes += static_cast<uint64_t>(r.count) * sizeof(float);
  const MemoryPlan plan = plan_memory(*impl->backend, ckpt.config, ckpt.linears, ckpt.tensors, sequence_bytes,
                                      options.max_sequences, step_tokens, options.memory_utilization);
  check_fits(plan, impl->backend->description(), options.max_sequences, options.reserve_tokens, options.memory_utilization);

  // Weights a backend copies are shown as they go (CPU placement copies nothing).
  std::unique_ptr<ProgressBar> bar;
  uint64_t placed = 0;
  if (plan.weight_bytes > 0) {
    bar = std::make_unique<ProgressBar>("placing weights", plan.weight_bytes, options.show_progress);
    impl->backend->set_placement_progress([&](uint64_t bytes) { bar->update(placed += bytes); });
  }
  impl->model = std::make_unique<Model>(*impl->backend, ckpt.config, ckpt.linears, ckpt.tensors,
                                        ModelOptions{options.act_quant, options.reserve_tokens});
  if (bar) {
    bar->finish();
    impl->backend->set_placement_progress(nullptr);
  }
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

// The checkpoint's config: a rank's model holds its own head count and sizes.
const ModelConfig& Engine::config() const { return impl_->checkpoint.config; }
const Backend& Engine::backend() const { return impl_->sharded ? impl_->sharded->rank_backend(0) : *impl_->backend; }
const Numerics& Engine::numerics() const { return impl_->lead().numerics(); }
bool Engine::has_sequence(SequenceId id) const { return impl_->lead().has_sequence(id); }
int64_t Engine::position(SequenceId id) const { return impl_->lead().position(id); }
size_t Engine::sequence_state_bytes() const { return impl_->lead().state_layout().slot_bytes(); }
size_t Engine::live_state_bytes() const { return impl_->lead().live_state_bytes(); }
int64_t Engine::reserve_tokens() const { return impl_->lead().context(); }

void Engine::create_sequence(SequenceId id) {
  if (impl_->sharded) return impl_->sharded->on_every_rank([&](int, Model& m) { m.create_sequence(id); });
  impl_->model->create_sequence(id);
}

void Engine::free_sequence(SequenceId id) {
  if (impl_->sharded) return impl_->sharded->on_every_rank([&](int, Model& m) { m.free_sequence(id); });
  impl_->model->free_sequence(id);
}

void Engine::step(std::span<const StepItem> items, std::vector<float>& logits) {
  if (impl_->sharded) return impl_->sharded->forward(items, logits);
  impl_->model->forward(items, logits);
}

std::string Engine::unusable() const { return impl_->sharded ? impl_->sharded->broken() : std::string(); }

Model& Engine::model() {
  FP4SERVE_CHECK(!impl_->sharded, "the model is split over {} ranks: its MTP block and final streams are not offered "
                                  "under tensor parallelism yet (issue 14)", impl_->sharded ? impl_->sharded->size() : 1);
  return *impl_->model;
}

}  // namespace fp4serve
