// Random DeepSeek-V4 checkpoints in memory, from the same generator as make-test-model
// (test_model.h): the tensors expected_tensors() lists for a config, each linear in the
// encoding a layout gives it (layout_encoding), no files. Two ways to fill them:
//   kMasters  the seeded float masters of RandomMasters (values depend only on seed and
//             canonical name), quantized with each producer's scale rule: what forward-pass
//             tests use; the same values make-test-model writes.
//   kCodes    random valid codes with moderate scales, filled in parallel: fast enough for the
//             multi-GB Flash-proportioned model `fp4serve bench decode` measures (preset
//             "flash", test_model.h), whose values do not matter.
#pragma once

#include <cstdint>

#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_writer.h"

namespace fp4serve {

enum class RandomValues : uint8_t { kMasters, kCodes };

struct RandomCheckpointOptions {
  OutputLayout encodings = OutputLayout::kNative;  // which encoding each linear gets (names stay canonical)
  Nvfp4Scope nvfp4_scope = Nvfp4Scope::kLinears;
  uint64_t seed = 0;
  RandomValues values = RandomValues::kMasters;
};

// The checkpoint (layout "random <layout>"). Throws Error for an invalid config.
Checkpoint random_checkpoint(const ModelConfig& config, const RandomCheckpointOptions& options);

}  // namespace fp4serve
