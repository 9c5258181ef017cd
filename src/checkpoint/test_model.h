// The random DeepSeek-V4 checkpoint generator: seeded configs (presets) and values, written in
// every layout fp4serve reads (`fp4serve make-test-model`) or built in memory
// (random_checkpoint.h). Values: linears N(0, 1/fan_in), norms 1 +- 0.1, hc_fn N(0, 0.02),
// hc scales 1 +- 0.1, hc bases N(0, 0.1), sinks, embedding and Markov embedding N(0, 1),
// ape N(0, 0.1), gate bias N(0, 0.01), distinct random experts per tid2eid row.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "checkpoint/checkpoint_writer.h"
#include "config/model_config.h"

namespace fp4serve {

// Presets: "tiny" (layers SWA+hash, CSA+hash, HCA(16)+learned, CSA+learned, MTP),
// "tiny-pro" (ratios [16, 16, 4, 16, 0], 3 hash layers), "tiny-tp" (8 heads, 4 output groups,
// intermediate 1024: every split over 2, 4 and 8 ranks whole, for the tensor-parallel tests), "small" (the same schedule at hidden
// 64, for committed fixtures), "large" (multi-GB: the loading benchmark), "flash" (below), "v4-flash"
// and "v4-pro" (the released shapes: write them --sparse).
// "flash": V4-Flash's per-layer proportions (hidden 4096, 64 heads of 512, FP8 attention and shared
// expert, MXFP4 experts of 2048, top-6, Flash's SWA/CSA/HCA pattern, 3 hash layers) with fewer
// layers, experts and vocabulary: what `fp4serve bench decode` measures without a 160 GB download.
// flash_proportioned_config() sizes it; a smaller hidden shrinks heads, ranks and experts with it.
struct FlashShape {
  int64_t layers = 6;     // pattern SWA, SWA, CSA, HCA, CSA, HCA, ...
  int64_t experts = 16;   // routed experts per layer (Flash: 256)
  int64_t vocab = 32768;  // Flash: 129280
  int64_t hidden = 4096;  // Flash: 4096
};
ModelConfig flash_proportioned_config(const FlashShape& shape);  // with a classic MTP draft, as every preset

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

// A preset's config with the given draft: kMtp (the presets' own: one classic MTP block),
// kDSpark (the released drafter's structure scaled down: 3 stages, block 5, tapping the last
// three main layers, a Markov head of rank 16 and a confidence head), or kNone.
ModelConfig with_draft(ModelConfig config, DraftKind draft);
bool parse_draft_kind(std::string_view name, DraftKind* out);  // "none", "mtp", "dspark"

struct TestModelOptions {
  OutputLayout layout = OutputLayout::kNative;
  uint64_t seed = 0;
  std::string preset = "tiny";
  DraftKind draft = DraftKind::kMtp;
  Nvfp4Scope nvfp4_scope = Nvfp4Scope::kLinears;
  uint64_t shard_bytes = uint64_t{1} << 30;
  bool sparse = false;  // WriterOptions::sparse: headers and holes
};

WriteReport write_test_model(const std::string& dir, const TestModelOptions& options);

}  // namespace fp4serve
