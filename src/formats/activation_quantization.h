// Activation quantization as DeepSeek's reference kernels do it (inference/kernel.py
// act_quant and fp4_act_quant): per row, blocks of 1 x block_size along the last dimension,
// one scale per block. Used for FP8 activations in linears and for the QAT simulations the
// model was trained with. x is row-major [rows, cols]; the last block of a row may be partial
// (DeepSeek asserts cols % block_size == 0; its amax would be the same).
//
// Non-finite inputs: the scale comes from the finite elements of the block; a NaN or Inf
// element becomes NaN (E4M3 code 0x7F; in FP4, which has no NaN, the block's E8M0 scale
// becomes 0xFF, OCP MX's "whole block is NaN"), so a broken activation stays visible.
#pragma once

#include <cstdint>
#include <span>

namespace fp4serve {

inline constexpr int64_t kFp8ActivationBlock = 128;
inline constexpr int64_t kFp4ActivationBlock = 32;

enum class ActivationScale : uint8_t {
  kUe8m0,  // scale_fmt "ue8m0": 2^ceil(log2(max(amax, 1e-4) / 448)) (fp8_scale_ue8m0)
  kF32,    // no scale_fmt: max(amax, 1e-4) * fp32(1/448), a multiply as in DeepSeek's kernel
};

// codes: rows * cols E4M3 bytes, code = E4M3(clamp(x / scale, ±448)) (nearest even);
// scales: rows * ceil(cols / block_size) floats, the dequant multipliers.
void quantize_activations_fp8(std::span<const float> x, int64_t rows, int64_t cols, int64_t block_size,
                              ActivationScale rule, std::span<uint8_t> codes, std::span<float> scales);

// In place: x <- E4M3(clamp(x / scale, ±448)) * scale (act_quant with inplace=True). The
// product is exact in fp32 and in bf16.
void simulate_activations_fp8(std::span<float> x, int64_t rows, int64_t cols, int64_t block_size, ActivationScale rule);

// fp4_act_quant: scale = fp4_scale_ue8m0(amax) (amax floored at 6 * 2^-126), code =
// E2M1(clamp(x / scale, ±6)) (nearest even, sign kept). packed: rows * cols / 2 bytes, low
// nibble = even column; scales: rows * ceil(cols / block_size) E8M0 bytes. cols and
// block_size must be even.
void quantize_activations_fp4(std::span<const float> x, int64_t rows, int64_t cols, int64_t block_size,
                              std::span<uint8_t> packed, std::span<uint8_t> scales);

// In place: x <- E2M1(clamp(x / scale, ±6)) * scale (fp4_act_quant with inplace=True).
void simulate_activations_fp4(std::span<float> x, int64_t rows, int64_t cols, int64_t block_size);

}  // namespace fp4serve
