// A deterministic stand-in for the real model, for tests of the scheduler and
// the server (and `fp4serve serve --fake-model`, a test-only flag).
//
// Logits are a hash of the sequence's whole token history, so greedy outputs
// depend on every earlier token: a token lost, duplicated or swapped between
// sequences in a batch changes everything after it, which is how tests catch
// cross-talk under load. Each sequence also holds real memory proportional to
// its length (like a KV cache), so tests can see it freed.
//
// Scripted replies: when a text codec is given and the prompt contains
// `[[fake-reply]]TEXT[[/fake-reply]]` (the last one wins), the model answers
// TEXT token by token and then EOS, with a margin that survives any sampling
// settings. That lets end-to-end tests drive reasoning and tool-call output.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/step_model.h"

namespace fp4serve::runtime {

struct FakeModelOptions {
  int vocab_size = 512;
  int64_t max_context = 4096;
  int32_t eos_token = 1;
  // Tokens the hash may choose (the others get a very low logit); empty means
  // every token but EOS. Tests pass tokens that decode to plain words.
  std::vector<int32_t> free_text_tokens;
  // Simulated compute per step, so that streams last long enough to abort.
  std::chrono::microseconds step_delay{0};
  // Simulated per-token state, touched as tokens are appended.
  size_t state_bytes_per_token = 4096;
  // Text codec for scripted replies (both or neither).
  std::function<std::string(std::span<const int32_t>)> decode;
  std::function<std::vector<int32_t>(const std::string&)> encode;
};

class FakeStepModel : public StepModel {
 public:
  explicit FakeStepModel(FakeModelOptions options);
  ~FakeStepModel() override;

  int vocab_size() const override { return options_.vocab_size; }
  int64_t max_context() const override { return options_.max_context; }
  void create_sequence(SequenceId id) override;
  void free_sequence(SequenceId id) override;
  void step(std::span<const StepItem> work, std::span<float> logits) override;
  size_t sequence_state_bytes() const override;

  size_t live_sequences() const;

 private:
  struct Sequence;
  void write_logits(Sequence& sequence, std::span<float> row) const;

  FakeModelOptions options_;
  std::vector<bool> is_free_text_;
  mutable std::mutex mutex_;
  std::unordered_map<SequenceId, std::unique_ptr<Sequence>> sequences_;
};

}  // namespace fp4serve::runtime
