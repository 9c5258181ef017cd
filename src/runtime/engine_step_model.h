// The real model behind the scheduler: adapts runtime::Engine (a checkpoint on a
// backend) to runtime::StepModel. Each sequence id owns one state slot, sized up
// front for the whole context (so decoding never allocates, and its bytes are known
// exactly); free_sequence returns it at once.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "runtime/engine.h"
#include "runtime/engine_drafts.h"
#include "runtime/speculative_config.h"
#include "runtime/step_model.h"

namespace fp4serve::runtime {

struct EngineModelOptions {
  DeviceChoice device = DeviceChoice::kAuto;
  ActQuantMode act_quant = ActQuantMode::kAuto;
  // Context length (prompt + completion). 0: the model's max_position_embeddings,
  // capped at kDefaultMaxContext, because every sequence reserves its state for it.
  int64_t max_context = 0;
  // For the fit check: sequences running at once (--max-num-seqs), tokens of one step
  // (--max-num-batched-tokens), and the device's share (--gpu-memory-utilization).
  int64_t max_sequences = 1;
  int64_t max_step_tokens = 0;  // 0: the context
  double memory_utilization = 0.9;
  bool show_progress = true;  // while loading
  SpeculativeConfig speculative;  // --speculative-config (checked against the checkpoint)
  int tensor_parallel_size = 1;  // EngineOptions' fields of the same names
  bool expert_parallel = false;
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
  // max_context = the engine's reserve_tokens; `speculative` checked against the engine's model.
  explicit EngineStepModel(std::unique_ptr<Engine> engine, const SpeculativeConfig& speculative = {});
  ~EngineStepModel() override;

  int vocab_size() const override { return static_cast<int>(engine_->config().vocab_size); }
  int64_t max_context() const override { return max_context_; }
  void create_sequence(SequenceId id) override;
  void free_sequence(SequenceId id) override;
  void step(std::span<const StepItem> work, std::span<float> logits) override;
  size_t sequence_state_bytes() const override { return engine_->live_state_bytes(); }
  std::string unusable() const override { return engine_->unusable(); }
  DraftSource* draft_source() override { return drafts_.get(); }

  const Engine& engine() const { return *engine_; }

 private:
  std::unique_ptr<Engine> engine_;
  int64_t max_context_ = 0;
  // Sequences are created, stepped and freed by the scheduler thread; the mutex
  // keeps a stray caller from corrupting the model's table (/metrics reads the
  // pool's atomic counter).
  std::mutex mutex_;
  std::vector<StepItem> items_;
  std::vector<float> engine_logits_, streams_;
  std::unique_ptr<EngineDrafts> drafts_;
};

}  // namespace fp4serve::runtime
