#include "formats/scale_rules.h"

#include <algorithm>

#include "formats/number_formats.h"

namespace fp4serve {
namespace {

constexpr float kE4M3Max = 448.0f;
constexpr float kE2M1Max = 6.0f;
constexpr float kFp8AmaxFloor = 1e-4f;
constexpr float kFp4AmaxFloor = kE2M1Max * 0x1p-126f;

}  // namespace

uint8_t fp8_scale_ue8m0(float amax) { return encode_e8m0_ceil(std::max(amax, kFp8AmaxFloor) / kE4M3Max); }

float fp8_scale_f32(float amax) { return std::max(amax, kFp8AmaxFloor) / kE4M3Max; }

uint8_t fp4_scale_ue8m0(float amax) { return encode_e8m0_ceil(std::max(amax, kFp4AmaxFloor) / kE2M1Max); }

float nvfp4_global_scale(float tensor_amax) { return tensor_amax / (kE2M1Max * kE4M3Max); }

uint8_t nvfp4_block_scale(float block_amax, float global_scale) {
  const float six_global = kE2M1Max * global_scale;
  float s = block_amax / six_global;
  if (s == 0.0f) s = 1.0f;
  s = std::clamp(s, 0x1p-9f, kE4M3Max);
  return encode_e4m3(s, E4M3Overflow::kSaturate);
}

}  // namespace fp4serve
