// --speculative-config, spelled as vLLM spells it: a JSON object such as
// '{"method": "dspark", "num_speculative_tokens": 5}' or '{"method": "mtp",
// "num_speculative_tokens": 1}', with the optional "confidence_threshold" (DSpark: verify only
// the drafted prefix before the first position whose confidence head says sigmoid(logit) <
// threshold; 0 = verify every drafted token, as TensorRT-LLM's and SGLang's option of that
// name). Parsing and the check against the checkpoint's draft give errors that name the key.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "config/model_config.h"

namespace fp4serve::runtime {

enum class SpeculativeMethod : uint8_t { kNone, kDSpark, kMtp };

struct SpeculativeConfig {
  SpeculativeMethod method = SpeculativeMethod::kNone;
  int64_t num_speculative_tokens = 0;
  double confidence_threshold = 0.0;
  bool enabled() const { return method != SpeculativeMethod::kNone; }
};

// "" means no speculation. Throws Error on invalid JSON, an unknown method or key, a
// missing or non-positive num_speculative_tokens, a threshold outside [0, 1).
SpeculativeConfig parse_speculative_config(std::string_view json);

// Throws Error when the checkpoint has no draft of that method, or the count is more than the
// draft proposes per step (DSpark: dspark_block_size; classic MTP: 1).
void check_speculative_config(const SpeculativeConfig& spec, const ModelConfig& config, const std::string& model_dir);

// Throws Error, naming both flags, when speculation is asked of a model split over ranks:
// the MTP block and the DSpark draft run on an unsplit model only (docs/PARALLELISM.md,
// "Speculative decoding"). Checked where the flags are parsed, before anything loads.
void check_speculation_alone(const SpeculativeConfig& spec, int tensor_parallel_size, bool expert_parallel);

}  // namespace fp4serve::runtime
