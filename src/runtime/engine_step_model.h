// The real model behind the scheduler: adapts runtime::Engine (a checkpoint on the
// CPU forward pass) to runtime::StepModel. Each sequence id owns one
// SequenceState, sized up front for the whole context (so decoding never
// allocates, and its bytes are known exactly); free_sequence drops it at once.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "runtime/engine.h"
#include "runtime/step_model.h"

namespace fp4serve::runtime {

struct EngineModelOptions {
  ActQuantMode act_quant = ActQuantMode::kAuto;
  // Context length (prompt + completion). 0: the model's max_position_embeddings,
  // capped at kDefaultMaxContext, because every sequence reserves its state for it.
  int64_t max_context = 0;
  bool show_progress = true;  // while loading
};

// The default context when none is asked for; DeepSeek-V4 configs say 1M positions,
// whose state (~1 GB per sequence for the default model) no CPU batch can reserve.
constexpr int64_t kDefaultMaxContext = 4096;

// The context a model directory's config allows, after the options: Error when
// asked for more than max_position_embeddings.
int64_t resolve_max_context(const ModelConfig& config, int64_t requested);

class EngineStepModel : public StepModel {
 public:
  // Loads MODEL_DIR (Engine::open: throws Error naming the bad file or tensor).
  static std::unique_ptr<EngineStepModel> open(const std::string& model_dir, const EngineModelOptions& options);
  explicit EngineStepModel(std::unique_ptr<Engine> engine);  // max_context = the engine's reserve_tokens
  ~EngineStepModel() override;

  int vocab_size() const override { return static_cast<int>(engine_->config().vocab_size); }
  int64_t max_context() const override { return max_context_; }
  void create_sequence(SequenceId id) override;
  void free_sequence(SequenceId id) override;
  void step(std::span<const SequenceWork> work, std::span<float> logits) override;
  size_t sequence_state_bytes() const override { return live_.load() * bytes_per_sequence_; }

  const Engine& engine() const { return *engine_; }

 private:
  std::unique_ptr<Engine> engine_;
  int64_t max_context_ = 0;
  size_t bytes_per_sequence_ = 0;
  // Sequences are created, stepped and freed by the scheduler thread; the mutex
  // keeps a stray caller from corrupting the map, the counter serves /metrics.
  std::mutex mutex_;
  std::unordered_map<SequenceId, std::unique_ptr<SequenceState>> sequences_;
  std::atomic<size_t> live_{0};
  std::vector<StepRequest> requests_;
  std::vector<float> engine_logits_;
};

}  // namespace fp4serve::runtime
