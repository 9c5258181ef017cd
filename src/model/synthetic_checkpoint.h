// A DeepSeek-V4 checkpoint of random weights in memory, with the real per-layer
// proportions of V4-Flash (hidden 4096, 64 heads of 512, FP8 block-128 attention and
// shared expert, MXFP4 routed experts of 2048, top-6) and fewer layers, experts and
// vocabulary: what `fp4serve bench decode` measures without a 160 GB download.
#pragma once

#include <cstdint>

#include "checkpoint/checkpoint.h"

namespace fp4serve {

struct SyntheticShape {
  int64_t layers = 6;        // pattern SWA, SWA, CSA, HCA, CSA, HCA, ... (Flash's), first 3 hash-routed
  int64_t experts = 16;      // routed experts per layer (Flash: 256)
  int64_t vocab = 32768;     // Flash: 129280
  int64_t hidden = 4096;     // Flash: 4096; smaller values shrink every dimension for tests
};

ModelConfig synthetic_config(const SyntheticShape& shape);
// Weights drawn from a fast generator (seeded): FP8 / MXFP4 codes with moderate
// scales, BF16 and F32 tensors near their usual values.
Checkpoint synthetic_checkpoint(const ModelConfig& config, uint64_t seed);

}  // namespace fp4serve
