#include "checkpoint/quant_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fnmatch.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "fp4serve_version.h"
#include "checkpoint/model_config_json.h"

namespace fp4serve {
namespace {

using nlohmann::json;

std::string dump(const json& value) {
  std::string text = value.dump();
  return text.size() > 60 ? text.substr(0, 57) + "..." : text;
}

std::string string_field(const json& object, const char* key, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return {};
  if (!it->is_string()) fail("{}: field '{}' must be a string, got {}", where, key, dump(*it));
  return it->get<std::string>();
}

std::vector<std::string> string_list(const json& object, const char* key, const std::string& where) {
  std::vector<std::string> out;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return out;
  if (!it->is_array()) fail("{}: field '{}' must be a list of strings, got {}", where, key, dump(*it));
  for (const json& item : *it) {
    if (!item.is_string()) fail("{}: field '{}' must hold strings, got {}", where, key, dump(item));
    out.push_back(item.get<std::string>());
  }
  return out;
}

bool is_nvfp4_algo(const std::string& algo) { return algo == "NVFP4" || algo == "W4A16_NVFP4"; }

void check_group_size(const json& object, const std::string& where, QuantConfig& q) {
  auto it = object.find("group_size");
  if (it == object.end() || it->is_null()) return;
  if (!it->is_number_integer() || it->get<int64_t>() != 16)
    fail("{}: group_size is {}; NVFP4 uses 16-element blocks", where, dump(*it));
  q.group_size = 16;
}

void set_algo(std::string& slot, const std::string& value, const char* field, const std::string& where) {
  if (value.empty()) return;
  if (!slot.empty() && slot != value)
    fail("{}: {} is '{}' but '{}' was given elsewhere (hf_quant_config.json and config.json disagree)", where, field,
         value, slot);
  slot = value;
}

// Fields ModelOpt writes, in hf_quant_config.json "quantization" and in config.json
// "quantization_config" alike.
void parse_modelopt_fields(const json& block, const std::string& where, QuantConfig& q) {
  q.modelopt = true;
  q.sources.push_back(where);
  set_algo(q.quant_algo, string_field(block, "quant_algo", where), "quant_algo", where);
  set_algo(q.moe_quant_algo, string_field(block, "moe_quant_algo", where), "moe_quant_algo", where);
  set_algo(q.kv_cache_quant_algo, string_field(block, "kv_cache_quant_algo", where), "kv_cache_quant_algo", where);
  check_group_size(block, where, q);
  for (const char* key : {"exclude_modules", "ignore"}) {
    for (auto& pattern : string_list(block, key, where)) {
      if (std::find(q.exclude_patterns.begin(), q.exclude_patterns.end(), pattern) == q.exclude_patterns.end())
        q.exclude_patterns.push_back(pattern);
    }
  }
  if (auto it = block.find("config_groups"); it != block.end() && it->is_object()) {
    for (auto& [name, group] : it->items()) {
      if (!group.is_object()) continue;
      if (auto w = group.find("weights"); w != group.end() && w->is_object()) {
        check_group_size(*w, fmt::format("{} config_groups.{}.weights", where, name), q);
        if (auto bits = w->find("num_bits"); bits != w->end() && *bits != 4 && *bits != 8)
          fail("{}: config_groups.{}.weights.num_bits is {}; expected 4 (NVFP4)", where, name, dump(*bits));
      }
    }
  }
  if (auto it = block.find("quantized_layers"); it != block.end() && !it->is_null()) {
    if (!it->is_object()) fail("{}: field 'quantized_layers' must be an object", where);
    for (auto& [module, spec] : it->items()) {
      if (!spec.is_object()) fail("{}: quantized_layers['{}'] must be an object", where, module);
      const std::string algo = string_field(spec, "quant_algo", where + " quantized_layers['" + module + "']");
      if (!is_nvfp4_algo(algo))
        fail("{}: quantized_layers['{}'].quant_algo is '{}'; fp4serve reads NVFP4 ModelOpt layers", where, module, algo);
      check_group_size(spec, where + " quantized_layers['" + module + "']", q);
      q.quantized_layers[module] = algo;
    }
  }
  if (auto it = block.find("producer"); it != block.end() && it->is_object()) {
    q.producer = string_field(*it, "name", where) + " " + string_field(*it, "version", where);
  }
}

void validate_modelopt(const QuantConfig& q, const std::string& where) {
  if (!q.modelopt) return;
  const std::string& a = q.quant_algo;
  if (!a.empty() && !is_nvfp4_algo(a) && a != "MIXED_PRECISION")
    fail("{}: quant_algo is '{}'; fp4serve reads ModelOpt NVFP4, W4A16_NVFP4 and MIXED_PRECISION exports", where, a);
  if (!q.moe_quant_algo.empty() && !is_nvfp4_algo(q.moe_quant_algo))
    fail("{}: moe_quant_algo is '{}'; only NVFP4 is supported", where, q.moe_quant_algo);
  if (a.empty() && q.moe_quant_algo.empty())
    fail("{}: ModelOpt config names neither quant_algo nor moe_quant_algo", where);
  if (a == "MIXED_PRECISION" && q.quantized_layers.empty() && q.moe_quant_algo.empty())
    fail("{}: quant_algo MIXED_PRECISION without quantized_layers or moe_quant_algo", where);
}

// DeepSeek's native block-FP8 description.
void parse_deepseek_fp8(const json& qc, const std::string& where, QuantConfig& q) {
  q.fp8_block = true;
  q.sources.push_back(where);
  const std::string fmt_name = string_field(qc, "fmt", where);
  if (!fmt_name.empty() && fmt_name != "e4m3")
    fail("{}: fmt is '{}'; DeepSeek FP8 checkpoints use e4m3", where, fmt_name);
  const std::string scale_fmt = string_field(qc, "scale_fmt", where);
  if (!scale_fmt.empty() && scale_fmt != "ue8m0")
    fail("{}: scale_fmt is '{}'; expected ue8m0 (or absent for float scales)", where, scale_fmt);
  q.ue8m0_scales = scale_fmt == "ue8m0";
  const std::string scheme = string_field(qc, "activation_scheme", where);
  if (!scheme.empty() && scheme != "dynamic")
    fail("{}: activation_scheme is '{}'; DeepSeek FP8 uses dynamic activation scales", where, scheme);
  if (auto it = qc.find("weight_block_size"); it != qc.end() && !it->is_null()) {
    if (*it != json::array({128, 128}))
      fail("{}: weight_block_size is {}; only [128, 128] is supported", where, dump(*it));
  }
}

}  // namespace

bool module_matches(const std::string& pattern, const std::string& module) {
  if (fnmatch(pattern.c_str(), module.c_str(), 0) == 0) return true;
  const std::string below = pattern + ".*";
  return fnmatch(below.c_str(), module.c_str(), 0) == 0;
}

bool QuantConfig::excluded(const std::string& module) const {
  for (const auto& pattern : exclude_patterns)
    if (module_matches(pattern, module)) return true;
  return false;
}

std::optional<bool> QuantConfig::claims_nvfp4(const std::string& module, bool is_routed_expert) const {
  if (!modelopt) return std::nullopt;
  if (excluded(module)) return false;
  if (is_nvfp4_algo(quant_algo)) return true;
  for (const auto& [pattern, algo] : quantized_layers)
    if (module_matches(pattern, module)) return is_nvfp4_algo(algo);
  if (!moe_quant_algo.empty()) return is_routed_expert;
  return quant_algo == "MIXED_PRECISION" ? std::optional<bool>(false) : std::nullopt;
}

std::string QuantConfig::describe() const {
  std::vector<std::string> parts;
  if (fp8_block) parts.push_back(fmt::format("fp8 e4m3 block 128x128 ({} scales)", ue8m0_scales ? "ue8m0" : "float"));
  if (!expert_dtype.empty()) parts.push_back("expert_dtype " + expert_dtype);
  if (modelopt) {
    std::string m = "modelopt";
    if (!quant_algo.empty()) m += " quant_algo " + quant_algo;
    if (!moe_quant_algo.empty()) m += " moe_quant_algo " + moe_quant_algo;
    if (group_size) m += fmt::format(" group_size {}", group_size);
    if (!exclude_patterns.empty()) m += fmt::format(", {} exclude patterns", exclude_patterns.size());
    if (!quantized_layers.empty()) m += fmt::format(", {} quantized_layers", quantized_layers.size());
    parts.push_back(m);
  }
  return parts.empty() ? "none (unquantized)" : fmt::format("{}", fmt::join(parts, "; "));
}

QuantConfig parse_quant_config(const json& config_json, const json* hf_quant_config, const std::string& config_label,
                               const std::string& hf_quant_label) {
  QuantConfig q;
  if (auto it = config_json.find("expert_dtype"); it != config_json.end() && !it->is_null()) {
    q.expert_dtype = string_field(config_json, "expert_dtype", config_label);
    if (q.expert_dtype != "fp4" && q.expert_dtype != "fp8")
      fail("{}: expert_dtype is '{}'; expected fp4 or fp8", config_label, q.expert_dtype);
  }
  if (auto it = config_json.find("quantization_config"); it != config_json.end() && !it->is_null()) {
    const std::string where = config_label + " quantization_config";
    if (!it->is_object()) fail("{}: must be an object, got {}", where, dump(*it));
    const std::string method = string_field(*it, "quant_method", where);
    if (method == "fp8") {
      parse_deepseek_fp8(*it, where, q);
      // The DeepSeek-V4 ModelOpt recipe adds its NVFP4 expert description to the FP8 block.
      if (it->contains("moe_quant_algo") || it->contains("quant_algo")) parse_modelopt_fields(*it, where, q);
    } else if (method == "modelopt") {
      parse_modelopt_fields(*it, where, q);
    } else {
      fail("{}: quant_method is '{}'; fp4serve reads fp8 (DeepSeek) and modelopt (NVFP4) checkpoints", where,
           method.empty() ? "(missing)" : method);
    }
    validate_modelopt(q, where);
  }
  if (hf_quant_config != nullptr) {
    if (!hf_quant_config->is_object()) fail("{}: expected a JSON object", hf_quant_label);
    auto it = hf_quant_config->find("quantization");
    if (it == hf_quant_config->end() || !it->is_object()) fail("{}: missing object 'quantization'", hf_quant_label);
    parse_modelopt_fields(*it, hf_quant_label + " quantization", q);
    if (auto p = hf_quant_config->find("producer"); p != hf_quant_config->end() && p->is_object())
      q.producer = string_field(*p, "name", hf_quant_label) + " " + string_field(*p, "version", hf_quant_label);
    validate_modelopt(q, hf_quant_label);
  }
  return q;
}

QuantConfig read_quant_config(const std::string& model_dir, const json& config_json) {
  const std::string hf_path = (std::filesystem::path(model_dir) / "hf_quant_config.json").string();
  const std::string config_label = (std::filesystem::path(model_dir) / "config.json").string();
  if (std::filesystem::exists(hf_path)) {
    const json hf = read_json_file(hf_path);
    return parse_quant_config(config_json, &hf, config_label, hf_path);
  }
  return parse_quant_config(config_json, nullptr, config_label, hf_path);
}

json modelopt_hf_quant_config(const std::string& quant_algo, const std::vector<std::string>& exclude_modules) {
  return {{"producer", {{"name", "fp4serve"}, {"version", FP4SERVE_VERSION}}},
          {"quantization",
           {{"quant_algo", quant_algo},
            {"kv_cache_quant_algo", nullptr},
            {"group_size", 16},
            {"exclude_modules", exclude_modules}}}};
}

json modelopt_quantization_config(const std::string& quant_algo, const std::vector<std::string>& exclude_modules) {
  const json fp4 = {{"num_bits", 4}, {"type", "float"}, {"group_size", 16}, {"dynamic", false}};
  json group = {{"weights", fp4}, {"targets", json::array({"Linear"})}};
  if (quant_algo == "NVFP4") group["input_activations"] = fp4;
  return {{"quant_method", "modelopt"},
          {"quant_algo", quant_algo},
          {"config_groups", {{"group_0", group}}},
          {"ignore", exclude_modules},
          {"producer", {{"name", "fp4serve"}, {"version", FP4SERVE_VERSION}}}};
}

json deepseek_fp8_quantization_config() {
  return {{"activation_scheme", "dynamic"},
          {"fmt", "e4m3"},
          {"quant_method", "fp8"},
          {"scale_fmt", "ue8m0"},
          {"weight_block_size", {128, 128}}};
}

}  // namespace fp4serve
