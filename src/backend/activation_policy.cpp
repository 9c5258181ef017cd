#include "backend/activation_policy.h"

namespace fp4serve {
namespace {

constexpr uint32_t bit(WeightEncoding e) { return 1u << static_cast<unsigned>(e); }

}  // namespace

bool parse_act_quant(std::string_view text, ActQuantMode* out) {
  if (text == "auto") *out = ActQuantMode::kAuto;
  else if (text == "off") *out = ActQuantMode::kOff;
  else if (text == "fp8") *out = ActQuantMode::kFp8;
  else return false;
  return true;
}

std::string_view act_quant_name(ActQuantMode mode) {
  switch (mode) {
    case ActQuantMode::kAuto: return "auto";
    case ActQuantMode::kOff: return "off";
    case ActQuantMode::kFp8: return "fp8";
  }
  return "?";
}

Numerics numerics_for(const std::set<WeightEncoding>& encodings, ActQuantMode mode) {
  Numerics n;
  if (mode == ActQuantMode::kOff) return n;
  // A native checkpoint (DeepSeek's own FP8 + MXFP4 release, or our quantize --to native).
  const bool native = encodings.count(WeightEncoding::kFP8Block) != 0 || encodings.count(WeightEncoding::kMXFP4) != 0;
  if (native) {
    n.fp8_input_encodings = bit(WeightEncoding::kFP8Block) | bit(WeightEncoding::kMXFP4);
    n.qat_simulation = true;
  }
  if (mode == ActQuantMode::kFp8)
    n.fp8_input_encodings |= bit(WeightEncoding::kFP8Block) | bit(WeightEncoding::kMXFP4) | bit(WeightEncoding::kNVFP4);
  return n;
}

}  // namespace fp4serve
