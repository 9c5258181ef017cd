// The narrow interface between the model and everything that drives it (CLI,
// server): open a model directory on a device, create sequences, and run a batched
// step (StepItems -> logits). The engine joins checkpoint/ (the loader) and model/
// (the forward pass over a Backend); it picks the backend, checks that the model
// and the requested state fit before placing anything, and owns both.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/activation_policy.h"
#include "backend/backend.h"
#include "config/model_config.h"
#include "model/step_item.h"

namespace fp4serve {

class Model;

// --device: cpu, cuda, or auto (cuda when the build has the CUDA backend, a GPU is
// visible and the backend starts; else cpu).
enum class DeviceChoice { kAuto, kCpu, kCuda };
bool parse_device_choice(std::string_view text, DeviceChoice* out);

struct EngineOptions {
  DeviceChoice device = DeviceChoice::kAuto;
  ActQuantMode act_quant = ActQuantMode::kAuto;
  int64_t reserve_tokens = 4096;  // per-sequence state sized up front for this many positions
  // For the fit check: sequences whose state must fit beside the weights, and the most
  // tokens one step runs.
  int64_t max_sequences = 1;
  int64_t max_step_tokens = 0;  // 0: reserve_tokens
  double memory_utilization = 0.9;  // --gpu-memory-utilization, in (0, 1]
  // Speculative decoding: each sequence also holds a rollback copy (Model::save_for_rollback),
  // counted in the fit check.
  bool speculative = false;
  bool show_progress = true;  // while loading
  bool announce_device = true;  // "device: ..." on stderr at start
  // --tensor-parallel-size / --enable-expert-parallel: above 1, the model is split over
  // that many ranks in this process (runtime/sharded_model.h; CUDA: one GPU each).
  int tensor_parallel_size = 1;
  bool expert_parallel = false;
};

class Engine {
 public:
  // Loads and validates the checkpoint, starts the backend, checks the fit, then
  // builds the model on it. Throws Error.
  static std::unique_ptr<Engine> open(const std::string& model_dir, const EngineOptions& options = {});
  ~Engine();

  const ModelConfig& config() const;
  const Backend& backend() const;
  const Numerics& numerics() const;

  void create_sequence(SequenceId id);
  void free_sequence(SequenceId id);
  bool has_sequence(SequenceId id) const;
  int64_t position(SequenceId id) const;
  // Bytes one sequence's state holds: its slot, sized up front for reserve_tokens
  // positions (sliding-window ring, compressor windows and entries). It never grows.
  size_t sequence_state_bytes() const;
  // Bytes the live sequences' states hold.
  size_t live_state_bytes() const;
  int64_t reserve_tokens() const;
  // Appends vocab_size floats per requested row (logit_rows) to `logits`, items in order.
  void step(std::span<const StepItem> items, std::vector<float>& logits);

  // The model itself (MTP, final streams); Error when it is split over ranks.
  Model& model();

  // Empty while steps can run; else why none can (a model split over ranks whose step
  // failed on one rank: runtime/sharded_model.h). Safe from any thread.
  std::string unusable() const;

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fp4serve
