// Quantization configs as checkpoints ship them:
//   - DeepSeek native: config.json "quantization_config" {quant_method fp8, fmt e4m3, scale_fmt ue8m0,
//     weight_block_size [128, 128]} plus top-level "expert_dtype" (fp4 | fp8);
//   - NVIDIA ModelOpt: hf_quant_config.json {"quantization": {quant_algo, group_size, exclude_modules,
//     kv_cache_quant_algo, quantized_layers}} and/or config.json "quantization_config" {quant_method
//     modelopt, quant_algo, config_groups, ignore}; the DeepSeek-V4 ModelOpt recipe keeps quant_method
//     fp8 and adds moe_quant_algo NVFP4 / quant_algo MIXED_PRECISION;
//   - none (BF16 / transformers-saved).
// Per-tensor encodings are always detected from the tensors themselves
// (linear_encoding.h); the config is validated for being supported, and its
// claims are compared with what the tensors hold (mismatches become warnings).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace fp4serve {

struct QuantConfig {
  // DeepSeek FP8 block-128 scaling of the non-expert linears (quant_method "fp8").
  bool fp8_block = false;
  bool ue8m0_scales = false;  // scale_fmt "ue8m0": power-of-two scales (stored E8M0 in V4)
  std::string expert_dtype;   // "fp4", "fp8" or "" when absent

  // NVIDIA ModelOpt.
  bool modelopt = false;
  std::string quant_algo;           // "NVFP4", "W4A16_NVFP4", "MIXED_PRECISION" or ""
  std::string moe_quant_algo;       // "NVFP4" or ""
  std::string kv_cache_quant_algo;  // recorded for inspect; fp4serve keeps its own KV precision
  int64_t group_size = 0;
  std::vector<std::string> exclude_patterns;            // fnmatch globs over the checkpoint's module names
  std::map<std::string, std::string> quantized_layers;  // MIXED_PRECISION: module (or glob) -> algo
  std::string producer;                                 // "modelopt 0.x" when given

  std::vector<std::string> sources;  // files and fields this was read from

  bool any() const { return fp8_block || modelopt; }
  std::string describe() const;  // one line for inspect
  // Whether the module (checkpoint's own name, without ".weight") is excluded from quantization.
  bool excluded(const std::string& module) const;
  // What the config says about NVFP4 for one linear; nullopt when it says nothing.
  std::optional<bool> claims_nvfp4(const std::string& module, bool is_routed_expert) const;
};

// Parses config.json's "quantization_config" / "expert_dtype" and, when given, the
// contents of hf_quant_config.json. Unsupported or inconsistent values throw Error
// naming the file and field.
QuantConfig parse_quant_config(const nlohmann::json& config_json, const nlohmann::json* hf_quant_config,
                               const std::string& config_label, const std::string& hf_quant_label);

// Reads MODEL_DIR/hf_quant_config.json when present and parses both.
QuantConfig read_quant_config(const std::string& model_dir, const nlohmann::json& config_json);

// fnmatch-style glob ('*' crosses dots, as in ModelOpt/vLLM); a pattern also
// matches every module below the one it names ("a.b" matches "a.b.c").
bool module_matches(const std::string& pattern, const std::string& module);

// The hf_quant_config.json ModelOpt writes for an export with `quant_algo`
// ("NVFP4" with calibrated input scales, "W4A16_NVFP4" without).
nlohmann::json modelopt_hf_quant_config(const std::string& quant_algo, const std::vector<std::string>& exclude_modules);
// The config.json "quantization_config" ModelOpt writes next to it.
nlohmann::json modelopt_quantization_config(const std::string& quant_algo,
                                            const std::vector<std::string>& exclude_modules);
// DeepSeek-native config.json "quantization_config".
nlohmann::json deepseek_fp8_quantization_config();

}  // namespace fp4serve
