// How each producer chooses a block's scale from the block's largest magnitude (amax).
// Shared by the weight quantizers and the activation quantizers: ModelOpt's NVFP4 scales,
// DeepSeek's FP8 block-128 and FP4 expert scales (inference/convert.py, kernel.py).
#pragma once

#include <cstdint>

namespace fp4serve {

// DeepSeek / DeepGEMM FP8 (weights per 128x128 block, activations per 1x128): amax is floored
// at 1e-4 (so an all-zero block still gets a usable scale), then
//   ue8m0: scale = 2^ceil(log2(amax / 448)), returned as its E8M0 byte;
//   f32:   scale = amax / 448.
// DeepSeek's kernel multiplies by fp32(1/448) instead of dividing; for every float amax both
// give the same power of two (tests check it on a dense sample).
uint8_t fp8_scale_ue8m0(float amax);
float fp8_scale_f32(float amax);

// DeepSeek's FP4 rule (fp4_act_quant; the MXFP4 experts): amax floored at 6 * 2^-126 (keeps
// the E8M0 byte >= 1), scale = 2^ceil(log2(amax / 6)), as an E8M0 byte.
uint8_t fp4_scale_ue8m0(float amax);

// ModelOpt NVFP4: per-tensor weight_scale_2 = amax / (6 * 448) (fp32 division by 2688).
float nvfp4_global_scale(float tensor_amax);
// ModelOpt NVFP4 block scale: s = block_amax / (6 * global_scale) in fp32 (6 * global_scale
// rounded first, as torch evaluates it); an all-zero block gets 1.0; then s is clamped to
// [2^-9, 448] and rounded to E4M3 (nearest even). Returns the E4M3 byte. global_scale must be
// positive.
uint8_t nvfp4_block_scale(float block_amax, float global_scale);

}  // namespace fp4serve
