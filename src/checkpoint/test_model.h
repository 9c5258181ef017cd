// Tiny random DeepSeek-V4 checkpoints for tests, deterministic from a seed, in
// every layout fp4serve reads (`fp4serve make-test-model`). Weights follow
// dsv4-architecture.md §7: linears N(0, 1/fan_in), norms 1 +- 0.1, hc_fn N(0, 0.02),
// hc scales 1 +- 0.1, hc bases N(0, 0.1), sinks N(0, 1), ape N(0, 0.1), gate bias
// N(0, 0.01), distinct random experts per tid2eid row.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint/checkpoint_writer.h"
#include "config/model_config.h"

namespace fp4serve {

// Presets: "tiny" (§7: layers SWA+hash, CSA+hash, HCA(16)+learned, CSA+learned, MTP),
// "tiny-pro" (§7 variant c: ratios [16, 16, 4, 16, 0], 3 hash layers), "small" (the same
// schedule at hidden 64, for committed fixtures), "large" (multi-GB: the
// loading benchmark), "v4-flash" and "v4-pro" (the released shapes: write them --sparse).
std::vector<std::string> test_model_presets();
ModelConfig test_model_config(const std::string& preset);  // throws Error for an unknown preset
inline ModelConfig tiny_test_config() { return test_model_config("tiny"); }

// Seeded random masters: every tensor's values depend only on (seed, canonical name).
class RandomMasters : public MasterSource {
 public:
  RandomMasters(const ModelConfig& config, uint64_t seed, bool with_input_amax);
  std::vector<float> linear(const ExpectedLinear& linear) override;
  std::vector<float> tensor(const ExpectedTensor& tensor) override;
  std::vector<int64_t> index_tensor(const ExpectedTensor& tensor) override;
  std::optional<float> input_amax(const ExpectedLinear& linear) override;

 private:
  const ModelConfig& config_;
  uint64_t seed_;
  bool with_input_amax_;
};

struct TestModelOptions {
  OutputLayout layout = OutputLayout::kNative;
  uint64_t seed = 0;
  std::string preset = "tiny";
  Nvfp4Scope nvfp4_scope = Nvfp4Scope::kLinears;
  uint64_t shard_bytes = uint64_t{1} << 30;
  bool sparse = false;  // WriterOptions::sparse: headers and holes
};

WriteReport write_test_model(const std::string& dir, const TestModelOptions& options);

}  // namespace fp4serve
