// DeepSeek-V4's activation quantization, as quantize-then-dequantize on fp32 values
// (DeepSeek's inference/kernel.py act_quant and fp4_act_quant with inplace=True):
//  - FP8 e4m3 per contiguous block with a power-of-two scale 2^ceil(log2(amax/448)),
//    amax floored at 1e-4: the input of every FP8/FP4 GEMM (block 128) and the KV QAT
//    simulation (block 64);
//  - E2M1 per block of 32 with scale 2^ceil(log2(amax/6)), amax floored at 6*2^-126:
//    the indexer's QAT simulation.
// Results are exact in fp32 (a few significant bits times a power of two).
#pragma once

#include <cstdint>

namespace fp4serve::cpu {

// out[i] = e4m3(x[i] / s_b) * s_b over blocks of `block` (n a multiple of block).
void fp8_quantize_dequantize(const float* x, int64_t n, int64_t block, float* out);
// out[i] = e2m1(x[i] / s_b) * s_b over blocks of `block` (n a multiple of block).
void fp4_quantize_dequantize(const float* x, int64_t n, int64_t block, float* out);

}  // namespace fp4serve::cpu
