#include "runtime/engine_step_model.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "base/error.h"
#include <nlohmann/json.hpp>

#include "checkpoint/model_config_json.h"

namespace fp4serve::runtime {

int64_t resolve_max_context(const ModelConfig& config, int64_t requested) {
  const int64_t model_max = config.max_position_embeddings;
  if (requested <= 0) return model_max > 0 ? std::min(model_max, kDefaultMaxContext) : kDefaultMaxContext;
  FP4SERVE_CHECK(model_max <= 0 || requested <= model_max,
                 "--max-model-len {} is longer than the model's max_position_embeddings {}", requested, model_max);
  return requested;
}

std::unique_ptr<EngineStepModel> EngineStepModel::open(const std::string& model_dir, const EngineModelOptions& options) {
  FP4SERVE_CHECK(std::filesystem::is_directory(model_dir), "model directory '{}' does not exist", model_dir);
  // The context decides how much state each sequence reserves, so it is needed
  // before the model is built: read it from config.json first.
  const std::string config_path = (std::filesystem::path(model_dir) / "config.json").string();
  const ModelConfig config = parse_model_config(read_json_file(config_path), config_path);
  EngineOptions engine_options;
  engine_options.act_quant = options.act_quant;
  engine_options.reserve_tokens = resolve_max_context(config, options.max_context);
  engine_options.show_progress = options.show_progress;
  return std::make_unique<EngineStepModel>(Engine::open(model_dir, engine_options));
}

EngineStepModel::EngineStepModel(std::unique_ptr<Engine> engine)
    : engine_(std::move(engine)),
      max_context_(engine_->reserve_tokens()),
      bytes_per_sequence_(engine_->sequence_state_bytes()) {}

EngineStepModel::~EngineStepModel() = default;

void EngineStepModel::create_sequence(SequenceId id) {
  std::lock_guard lock(mutex_);
  FP4SERVE_CHECK(!sequences_.count(id), "engine: sequence {} already exists", id);
  sequences_.emplace(id, engine_->new_sequence());
  live_.store(sequences_.size());
}

void EngineStepModel::free_sequence(SequenceId id) {
  std::unique_ptr<SequenceState> state;
  {
    std::lock_guard lock(mutex_);
    auto it = sequences_.find(id);
    FP4SERVE_CHECK(it != sequences_.end(), "engine: free of unknown sequence {}", id);
    state = std::move(it->second);
    sequences_.erase(it);
    live_.store(sequences_.size());
  }
  // `state` is released here, outside the lock.
}

void EngineStepModel::step(std::span<const SequenceWork> work, std::span<float> logits) {
  const size_t vocab = static_cast<size_t>(vocab_size());
  FP4SERVE_CHECK(logits.size() >= work.size() * vocab, "engine: logits buffer of {} floats for {} rows of {}",
                 logits.size(), work.size(), vocab);
  std::lock_guard lock(mutex_);
  // Every check before the forward pass, which would leave states half-advanced.
  requests_.clear();
  for (const SequenceWork& w : work) {
    auto it = sequences_.find(w.sequence);
    FP4SERVE_CHECK(it != sequences_.end(), "engine: step on unknown sequence {}", w.sequence);
    SequenceState* state = it->second.get();
    for (const StepRequest& earlier : requests_) {
      FP4SERVE_CHECK(earlier.sequence != state, "engine: sequence {} appears twice in one step", w.sequence);
    }
    FP4SERVE_CHECK(w.position == state->position(), "engine: sequence {} is at position {}, work says {}", w.sequence,
                   state->position(), w.position);
    FP4SERVE_CHECK(!w.tokens.empty(), "engine: empty work for sequence {}", w.sequence);
    FP4SERVE_CHECK(w.position + static_cast<int64_t>(w.tokens.size()) <= max_context_,
                   "engine: sequence {} would reach {} tokens, the context is {}", w.sequence,
                   w.position + static_cast<int64_t>(w.tokens.size()), max_context_);
    for (int32_t token : w.tokens) {
      FP4SERVE_CHECK(token >= 0 && static_cast<size_t>(token) < vocab, "engine: token {} outside the vocabulary of {}",
                     token, vocab);
    }
    requests_.push_back({state, w.tokens, false});
  }
  if (requests_.empty()) return;
  // The engine computes the last position's logits of every item, wanted or not:
  // for a prompt chunk that is one head row against the whole chunk's layers.
  engine_logits_.clear();
  engine_->step(requests_, engine_logits_);
  FP4SERVE_CHECK(engine_logits_.size() == work.size() * vocab, "engine: step returned {} logits for {} rows of {}",
                 engine_logits_.size(), work.size(), vocab);
  for (size_t i = 0; i < work.size(); ++i) {
    if (!work[i].want_logits) continue;
    std::memcpy(logits.data() + i * vocab, engine_logits_.data() + i * vocab, vocab * sizeof(float));
  }
}

}  // namespace fp4serve::runtime
