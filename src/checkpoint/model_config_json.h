// config.json -> ModelConfig, for every style DeepSeek-V4 configs come in:
//   - DeepSeek's Hugging Face config (compress_ratios, num_hash_layers, qk_rope_head_dim, rope_scaling),
//   - DeepSeek's inference/config.json (ModelArgs names: dim, n_layers, window_size, original_seq_len, ...),
//   - transformers' DeepseekV4Config (layer_types + compress_rates, mlp_layer_types,
//     partial_rotary_factor, nested rope_parameters {main, compress}).
// A key may appear under several of these names; when two are present they must agree.
// Inconsistent or unsupported values throw Error naming the file and the field.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <string_view>

#include "checkpoint/draft_config.h"
#include "config/model_config.h"

namespace fp4serve {

// `index`: what the checkpoint's tensor names say about mtp.* (draft_config.h); without it the
// draft kind comes from the config alone.
ModelConfig parse_model_config(const nlohmann::json& config, const std::string& label,
                               const DraftEvidence& index = {});
// Parses JSON text (the fuzzer's entry point); malformed JSON is an Error naming `label`.
ModelConfig parse_model_config_text(std::string_view text, const std::string& label);
// Reads and parses a JSON file; the error names the path.
nlohmann::json read_json_file(const std::string& path);

// Structural checks every parsed config must pass (sizes positive, divisibility,
// schedule lengths). Called by parse_model_config; exposed for generated configs.
void validate_model_config(const ModelConfig& config, const std::string& label);

// Config writers for the layouts we produce. DeepSeek's HF style carries
// compress_ratios with the draft entries (and the dspark_* keys of a DSpark draft, with
// num_nextn_predict_layers 1 as DeepSeek ships it); the transformers style is what
// DeepseekV4Config.save_pretrained writes (unknown keys such as dspark_* kept as they are).
nlohmann::json deepseek_style_config(const ModelConfig& config);
nlohmann::json transformers_style_config(const ModelConfig& config);

}  // namespace fp4serve
