#include "runtime/engine.h"

#include <cstdio>

#include "base/error.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/progress_bar.h"
#include "model/model.h"
#include "model/state_layout.h"
#include "runtime/memory_plan.h"

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
};

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

std::unique_ptr<Engine> Engine::open(const std::string& model_dir, const EngineOptions& options) {
  FP4SERVE_CHECK(options.reserve_tokens >= 1, "engine: reserve_tokens {} must be >= 1", options.reserve_tokens);
  FP4SERVE_CHECK(options.memory_utilization > 0.0 && options.memory_utilization <= 1.0,
                 "--gpu-memory-utilization {} must be in (0, 1]", options.memory_utilization);
  auto impl = std::make_unique<Impl>();
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
  const int64_t step_tokens = options.max_step_tokens > 0 ? options.max_step_tokens : options.reserve_tokens;
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

const ModelConfig& Engine::config() const { return impl_->model->config(); }
const Backend& Engine::backend() const { return *impl_->backend; }
const Numerics& Engine::numerics() const { return impl_->model->numerics(); }
void Engine::create_sequence(SequenceId id) { impl_->model->create_sequence(id); }
void Engine::free_sequence(SequenceId id) { impl_->model->free_sequence(id); }
bool Engine::has_sequence(SequenceId id) const { return impl_->model->has_sequence(id); }
int64_t Engine::position(SequenceId id) const { return impl_->model->position(id); }
size_t Engine::sequence_state_bytes() const { return impl_->model->state_layout().slot_bytes(); }
size_t Engine::live_state_bytes() const { return impl_->model->live_state_bytes(); }
int64_t Engine::reserve_tokens() const { return impl_->model->context(); }
void Engine::step(std::span<const StepItem> items, std::vector<float>& logits) { impl_->model->forward(items, logits); }
Model& Engine::model() { return *impl_->model; }

}  // namespace fp4serve
