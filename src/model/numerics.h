// Which of DeepSeek's reduced-precision steps a run applies (design.md, "activation
// precision is a policy"): native FP8/FP4 checkpoints follow DeepSeek's reference,
// everything else (BF16, NVFP4 on CPU) runs with bf16 activations, and
// `--act-quant off` turns all of it off (transformers' full-precision semantics).
#pragma once

#include "formats/linear_weight.h"

namespace fp4serve {

struct Checkpoint;

struct Numerics {
  // Inputs of FP8 block and MXFP4 linears quantized to e4m3 per 1x128 (power-of-two scales).
  bool fp8_activations = false;
  // The QAT simulations: window KV and compressed-entry nope dims through FP8 (block 64);
  // indexer queries and keys through a Hadamard rotation and E2M1 (block 32).
  bool qat_simulation = false;

  // The activation quantization a linear of this encoding gets.
  bool quantizes_input(WeightEncoding e) const {
    return fp8_activations && (e == WeightEncoding::kFP8Block || e == WeightEncoding::kMXFP4);
  }
};

enum class ActQuantMode { kAuto, kOff };

// kAuto: DeepSeek numerics when any projection is FP8 block or MXFP4 (a native
// checkpoint), else none. kOff: none.
Numerics numerics_for(const Checkpoint& checkpoint, ActQuantMode mode);

}  // namespace fp4serve
