// The RoPE frequencies of DeepSeek-V4's layers (DeepSeek's inference/model.py,
// precompute_freqs_cis): base rope_theta without YaRN on sliding-window layers,
// compress_rope_theta with YaRN on layers with a compressor. The model places one
// table per kind of layer; the backends rotate with it.
#pragma once

#include <cstdint>
#include <vector>

#include "config/model_config.h"

namespace fp4serve {

// rope_dim / 2 frequencies, as the reference computes them (fp32 exponents and powers).
// yarn null: plain RoPE.
std::vector<float> rope_frequencies(int64_t rope_dim, double base, const YarnConfig* yarn);

// The table a layer of compress ratio r uses.
std::vector<float> rope_frequencies_for_layer(const ModelConfig& config, int64_t ratio);

}  // namespace fp4serve
