#include "runtime/engine.h"

#include "checkpoint/checkpoint.h"
#include "model/model.h"

namespace fp4serve {

struct Engine::Impl {
  Checkpoint checkpoint;
  std::unique_ptr<Model> model;
  std::vector<SequenceInput> inputs;
};

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

std::unique_ptr<Engine> Engine::open(const std::string& model_dir, const EngineOptions& options) {
  auto impl = std::make_unique<Impl>();
  LoadOptions lo;
  lo.show_progress = options.show_progress;
  impl->checkpoint = load_checkpoint(model_dir, lo);
  impl->model = std::make_unique<Model>(impl->checkpoint, ModelOptions{options.act_quant, options.reserve_tokens});
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

const ModelConfig& Engine::config() const { return impl_->model->config(); }

std::unique_ptr<SequenceState> Engine::new_sequence() const { return impl_->model->new_sequence(); }

void Engine::step(std::span<const StepRequest> requests, std::vector<float>& logits) {
  impl_->inputs.clear();
  for (const StepRequest& r : requests) impl_->inputs.push_back({r.sequence, r.tokens, r.all_logits});
  impl_->model->forward(impl_->inputs, logits);
}

}  // namespace fp4serve
