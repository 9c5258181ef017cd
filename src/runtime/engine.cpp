#include "runtime/engine.h"

#include "base/error.h"
#include "checkpoint/checkpoint.h"
#include "model/model.h"

namespace fp4serve {

struct Engine::Impl {
  int64_t reserve_tokens = 0;
  Checkpoint checkpoint;
  std::unique_ptr<Model> model;
  std::vector<SequenceInput> inputs;
};

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

std::unique_ptr<Engine> Engine::open(const std::string& model_dir, const EngineOptions& options) {
  auto impl = std::make_unique<Impl>();
  FP4SERVE_CHECK(options.reserve_tokens >= 1, "engine: reserve_tokens {} must be >= 1", options.reserve_tokens);
  impl->reserve_tokens = options.reserve_tokens;
  LoadOptions lo;
  lo.show_progress = options.show_progress;
  impl->checkpoint = load_checkpoint(model_dir, lo);
  impl->model = std::make_unique<Model>(impl->checkpoint, ModelOptions{options.act_quant, options.reserve_tokens});
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

const ModelConfig& Engine::config() const { return impl_->model->config(); }

std::unique_ptr<SequenceState> Engine::new_sequence() const { return impl_->model->new_sequence(); }

int64_t Engine::reserve_tokens() const { return impl_->reserve_tokens; }

// Mirrors what Model::new_sequence allocates (AttentionLayer::reset_state and
// CompressorState::reset); tests/runtime checks it against the heap's own count.
size_t Engine::sequence_state_bytes() const {
  const ModelConfig& c = config();
  const int64_t reserve = impl_->reserve_tokens;
  // A compressor's partial windows (kv and score, coff*ratio x coff*dim each) and
  // its emitted entries, reserved for `entries` of them.
  auto compressor_floats = [](int64_t ratio, int64_t dim, int64_t entries) {
    const int64_t coff = ratio == 4 ? 2 : 1;
    return 2 * (coff * ratio) * (coff * dim) + entries * dim;
  };
  const int64_t blocks = c.num_layers + c.num_mtp_layers;
  int64_t floats = 0;
  for (int64_t i = 0; i < blocks; ++i) {
    const int64_t ratio = c.compress_ratio(i);
    floats += c.sliding_window * c.head_dim;
    if (ratio > 0) floats += compressor_floats(ratio, c.head_dim, reserve / ratio + 1);
    if (ratio == 4) floats += compressor_floats(4, c.index_head_dim, reserve / 4 + 1);
  }
  return sizeof(SequenceState) + static_cast<size_t>(blocks) * sizeof(AttentionState) +
         static_cast<size_t>(floats) * sizeof(float);
}

void Engine::step(std::span<const StepRequest> requests, std::vector<float>& logits) {
  impl_->inputs.clear();
  for (const StepRequest& r : requests) impl_->inputs.push_back({r.sequence, r.tokens, r.all_logits});
  impl_->model->forward(impl_->inputs, logits);
}

}  // namespace fp4serve
