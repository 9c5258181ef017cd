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
  // A config of a transformers-style DSpark checkpoint does not say how many stages its draft
  // has (the index does), so the whole config is parsed with the checkpoint, and only the
  // context length here.
  const std::string config_path = (std::filesystem::path(model_dir) / "config.json").string();
  const nlohmann::json config_json = read_json_file(config_path);
  ModelConfig config;
  const auto max_positions = config_json.find("max_position_embeddings");
  if (max_positions != config_json.end()) {
    FP4SERVE_CHECK(max_positions->is_number_integer(), "{}: max_position_embeddings must be an integer", config_path);
    config.max_position_embeddings = max_positions->get<int64_t>();
  }
  EngineOptions engine_options;
  engine_options.device = options.device;
  engine_options.act_quant = options.act_quant;
  engine_options.max_sequences = options.max_sequences;
  engine_options.max_step_tokens = options.max_step_tokens;
  engine_options.memory_utilization = options.memory_utilization;
  engine_options.reserve_tokens = resolve_max_context(config, options.max_context);
  engine_options.show_progress = options.show_progress;
  engine_options.tensor_parallel_size = options.tensor_parallel_size;
  engine_options.expert_parallel = options.expert_parallel;
  engine_options.speculative = options.speculative.enabled();
  auto engine = Engine::open(model_dir, engine_options);
  check_speculative_config(options.speculative, engine->config(), model_dir);
  return std::make_unique<EngineStepModel>(std::move(engine), options.speculative);
}

EngineStepModel::EngineStepModel(std::unique_ptr<Engine> engine, const SpeculativeConfig& speculative)
    : engine_(std::move(engine)), max_context_(engine_->reserve_tokens()) {
  if (speculative.enabled()) {
    check_speculative_config(speculative, engine_->config(), "the model");
    drafts_ = std::make_unique<EngineDrafts>(engine_->model(), speculative);
  }
}

EngineStepModel::~EngineStepModel() = default;

void EngineStepModel::create_sequence(SequenceId id) {
  std::lock_guard lock(mutex_);
  FP4SERVE_CHECK(!engine_->has_sequence(id), "engine: sequence {} already exists", id);
  engine_->create_sequence(id);
}

void EngineStepModel::free_sequence(SequenceId id) {
  std::lock_guard lock(mutex_);
  FP4SERVE_CHECK(engine_->has_sequence(id), "engine: free of unknown sequence {}", id);
  engine_->free_sequence(id);
  if (drafts_) drafts_->free_sequence(id);
}

void EngineStepModel::step(std::span<const StepItem> work, std::span<float> logits) {
  const size_t vocab = static_cast<size_t>(vocab_size());
  size_t slots = 0;
  for (const StepItem& w : work) slots += w.logits == LogitsMode::kAll ? w.tokens.size() : 1;
  FP4SERVE_CHECK(logits.size() >= slots * vocab, "engine: logits buffer of {} floats for {} rows of {}", logits.size(), slots,
                 vocab);
  std::lock_guard lock(mutex_);
  // The contract's checks, in its words, before the forward pass (which checks again).
  items_.clear();
  for (const StepItem& w : work) {
    FP4SERVE_CHECK(engine_->has_sequence(w.sequence), "engine: step on unknown sequence {}", w.sequence);
    for (const StepItem& earlier : items_) {
      FP4SERVE_CHECK(earlier.sequence != w.sequence, "engine: sequence {} appears twice in one step", w.sequence);
    }
    const int64_t position = engine_->position(w.sequence);
    FP4SERVE_CHECK(w.position == position, "engine: sequence {} is at position {}, work says {}", w.sequence, position,
                   w.position);
    FP4SERVE_CHECK(!w.tokens.empty(), "engine: empty work for sequence {}", w.sequence);
    FP4SERVE_CHECK(w.position + static_cast<int64_t>(w.tokens.size()) <= max_context_,
                   "engine: sequence {} would reach {} tokens, the context is {}", w.sequence,
                   w.position + static_cast<int64_t>(w.tokens.size()), max_context_);
    for (int32_t token : w.tokens) {
      FP4SERVE_CHECK(token >= 0 && static_cast<size_t>(token) < vocab, "engine: token {} outside the vocabulary of {}",
                     token, vocab);
    }
    FP4SERVE_CHECK(w.logits != LogitsMode::kAll || drafts_,
                   "engine: sequence {} asks for every position's logits; without speculation a step gives the last", w.sequence);
    items_.push_back(w);
  }
  if (items_.empty()) return;
  engine_logits_.clear();
  if (drafts_) {
    drafts_->before_step(items_);
    engine_->model().forward(items_, engine_logits_, drafts_->wants_streams() ? &streams_ : nullptr);
    drafts_->after_step(items_, streams_);
  } else {
    engine_->step(items_, engine_logits_);
  }
  // The rows each item asked for, in order, into its slots.
  size_t row = 0, slot = 0;
  for (const StepItem& w : work) {
    const size_t rows = w.logits == LogitsMode::kAll ? w.tokens.size() : w.logits == LogitsMode::kLast ? 1 : 0;
    std::memcpy(logits.data() + slot * vocab, engine_logits_.data() + row * vocab, rows * vocab * sizeof(float));
    row += rows;
    slot += w.logits == LogitsMode::kAll ? w.tokens.size() : 1;
  }
  FP4SERVE_CHECK(engine_logits_.size() == row * vocab, "engine: step returned {} logits for {} rows of {}",
                 engine_logits_.size(), row, vocab);
}

}  // namespace fp4serve::runtime
