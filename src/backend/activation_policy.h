// The numeric policy of a run: which reduced-precision steps of DeepSeek's reference
// every backend applies. One policy per set of weight encodings, honored alike by the
// CPU and CUDA backends, so the two can be compared at equal policy.
//
//   --act-quant auto  DeepSeek's numerics when the checkpoint is native (any FP8 block-128
//                     or MXFP4 linear): FP8 e4m3 1x128 power-of-two-scale inputs on FP8
//                     block and MXFP4 linears, plus the QAT simulations; otherwise none.
//   --act-quant fp8   W4A8/W8A8: FP8 1x128 inputs on every FP8 block, MXFP4 AND NVFP4
//                     linear (the Hopper fast path for 4-bit weights); the QAT
//                     simulations only for native checkpoints.
//   --act-quant off   none: bf16 activations everywhere (transformers' semantics).
#pragma once

#include <cstdint>
#include <set>
#include <string_view>

#include "formats/linear_weight.h"

namespace fp4serve {

enum class ActQuantMode { kAuto, kOff, kFp8 };

// "auto" / "off" / "fp8"; false for anything else.
bool parse_act_quant(std::string_view text, ActQuantMode* out);
std::string_view act_quant_name(ActQuantMode mode);

struct Numerics {
  // Encodings whose linears get their input quantized to e4m3 per 1x128 (bit i = encoding i).
  uint32_t fp8_input_encodings = 0;
  // The QAT simulations: window KV and compressed-entry nope dims through FP8 (block 64);
  // indexer queries and keys through a Hadamard rotation and E2M1 (block 32).
  bool qat_simulation = false;

  bool quantizes_input(WeightEncoding e) const { return (fp8_input_encodings >> static_cast<unsigned>(e)) & 1u; }
  bool fp8_activations() const { return fp8_input_encodings != 0; }
};

// The policy for a checkpoint holding linears of `encodings` (see the table above).
Numerics numerics_for(const std::set<WeightEncoding>& encodings, ActQuantMode mode);

}  // namespace fp4serve
