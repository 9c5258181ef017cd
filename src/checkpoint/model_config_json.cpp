#include "checkpoint/model_config_json.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "base/error.h"

namespace fp4serve {
namespace {

using nlohmann::json;

// Limits that no real or test DeepSeek-V4 config comes near; they keep a hostile
// config.json from making us allocate absurd schedules.
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxMtpLayers = 64;
constexpr int64_t kMaxDimension = int64_t{1} << 24;

const char* const kSlidingAttention = "sliding_attention";
const char* const kCompressedSparseAttention = "compressed_sparse_attention";
const char* const kHeavilyCompressedAttention = "heavily_compressed_attention";

std::string short_dump(const json& value) {
  std::string text = value.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

// Reads typed fields that may appear under several names (the three config styles
// name the same quantity differently). Two names present with different values is
// an error naming both.
class FieldReader {
 public:
  FieldReader(const json& object, std::string label) : object_(object), label_(std::move(label)) {}

  const std::string& label() const { return label_; }

  // The first present name and its value, after checking that all present names agree.
  std::optional<std::pair<std::string, const json*>> find(std::initializer_list<const char*> names) const {
    std::optional<std::pair<std::string, const json*>> found;
    for (const char* name : names) {
      auto it = object_.find(name);
      if (it == object_.end() || it->is_null()) continue;
      if (!found) {
        found.emplace(name, &*it);
      } else if (!same_value(*found->second, *it)) {
        fail("{}: fields '{}' ({}) and '{}' ({}) disagree", label_, found->first, short_dump(*found->second), name,
             short_dump(*it));
      }
    }
    return found;
  }

  std::optional<int64_t> optional_integer(std::initializer_list<const char*> names) const {
    auto found = find(names);
    if (!found) return std::nullopt;
    return as_integer(found->first, *found->second);
  }

  int64_t integer(std::initializer_list<const char*> names) const {
    auto value = optional_integer(names);
    if (!value) fail("{}: missing field '{}'", label_, *names.begin());
    return *value;
  }

  int64_t integer_or(std::initializer_list<const char*> names, int64_t fallback) const {
    return optional_integer(names).value_or(fallback);
  }

  std::optional<double> optional_number(std::initializer_list<const char*> names) const {
    auto found = find(names);
    if (!found) return std::nullopt;
    return as_number(found->first, *found->second);
  }

  double number_or(std::initializer_list<const char*> names, double fallback) const {
    return optional_number(names).value_or(fallback);
  }

  std::optional<std::string> optional_string(std::initializer_list<const char*> names) const {
    auto found = find(names);
    if (!found) return std::nullopt;
    if (!found->second->is_string())
      fail("{}: field '{}' must be a string, got {}", label_, found->first, short_dump(*found->second));
    return found->second->get<std::string>();
  }

  std::optional<bool> optional_bool(std::initializer_list<const char*> names) const {
    auto found = find(names);
    if (!found) return std::nullopt;
    if (!found->second->is_boolean())
      fail("{}: field '{}' must be true or false, got {}", label_, found->first, short_dump(*found->second));
    return found->second->get<bool>();
  }

  int64_t as_integer(const std::string& name, const json& value) const {
    if (value.is_number_integer()) {
      if (value.is_number_unsigned() && value.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
        fail("{}: field '{}' is out of range: {}", label_, name, short_dump(value));
      return value.get<int64_t>();
    }
    if (value.is_number_float()) {
      const double d = value.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return static_cast<int64_t>(d);
    }
    fail("{}: field '{}' must be an integer, got {}", label_, name, short_dump(value));
  }

  double as_number(const std::string& name, const json& value) const {
    if (!value.is_number()) fail("{}: field '{}' must be a number, got {}", label_, name, short_dump(value));
    return value.get<double>();
  }

 private:
  static bool same_value(const json& a, const json& b) {
    if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
    return a == b;
  }

  const json& object_;
  std::string label_;
};

// compress_ratios: one entry per main layer, optionally followed by one per MTP layer.
std::vector<int64_t> ratios_from_compress_ratios(const FieldReader& fields, const json& list, int64_t num_layers,
                                                 int64_t num_mtp) {
  if (!list.is_array()) fail("{}: field 'compress_ratios' must be a list, got {}", fields.label(), short_dump(list));
  const int64_t n = static_cast<int64_t>(list.size());
  if (n != num_layers && n != num_layers + num_mtp) {
    fail("{}: field 'compress_ratios' has {} entries; expected {} (num_hidden_layers) or {} (plus {} MTP)",
         fields.label(), n, num_layers, num_layers + num_mtp, num_mtp);
  }
  std::vector<int64_t> ratios;
  for (int64_t i = 0; i < n; ++i) {
    ratios.push_back(fields.as_integer(fmt::format("compress_ratios[{}]", i), list[static_cast<size_t>(i)]));
  }
  return ratios;
}

// transformers: layer_types[i] names the attention kind, compress_rates maps the
// compressed kinds to their ratio (defaults CSA 4, HCA 128; legacy scalar keys).
std::vector<int64_t> ratios_from_layer_types(const FieldReader& fields, const json& config, int64_t num_layers) {
  const json& types = config.at("layer_types");
  if (!types.is_array()) fail("{}: field 'layer_types' must be a list, got {}", fields.label(), short_dump(types));
  if (static_cast<int64_t>(types.size()) != num_layers) {
    fail("{}: field 'layer_types' has {} entries; num_hidden_layers is {}", fields.label(), types.size(), num_layers);
  }
  int64_t csa_rate = 4;
  int64_t hca_rate = 128;
  if (auto it = config.find("compress_rates"); it != config.end() && !it->is_null()) {
    if (!it->is_object()) fail("{}: field 'compress_rates' must be an object, got {}", fields.label(), short_dump(*it));
    FieldReader rates(*it, fields.label() + " compress_rates");
    csa_rate = rates.integer_or({kCompressedSparseAttention}, csa_rate);
    hca_rate = rates.integer_or({kHeavilyCompressedAttention}, hca_rate);
    for (auto& [key, value] : it->items()) {
      if (key != kCompressedSparseAttention && key != kHeavilyCompressedAttention)
        fail("{}: field 'compress_rates' has unknown layer type '{}'", fields.label(), key);
    }
  }
  csa_rate = fields.integer_or({"compress_rate_csa"}, csa_rate);
  hca_rate = fields.integer_or({"compress_rate_hca"}, hca_rate);
  if (csa_rate != 4) {
    fail("{}: compress rate of compressed_sparse_attention is {}; only 4 is supported (overlapping windows and the "
         "indexer are tied to ratio 4)",
         fields.label(), csa_rate);
  }
  if (hca_rate <= 0 || hca_rate == 4) {
    fail("{}: compress rate of heavily_compressed_attention is {}; it must be positive and not 4", fields.label(),
         hca_rate);
  }
  std::vector<int64_t> ratios;
  for (size_t i = 0; i < types.size(); ++i) {
    const json& t = types[i];
    if (!t.is_string()) fail("{}: layer_types[{}] must be a string, got {}", fields.label(), i, short_dump(t));
    const std::string kind = t.get<std::string>();
    if (kind == kSlidingAttention) {
      ratios.push_back(0);
    } else if (kind == kCompressedSparseAttention) {
      ratios.push_back(csa_rate);
    } else if (kind == kHeavilyCompressedAttention) {
      ratios.push_back(hca_rate);
    } else {
      fail("{}: layer_types[{}] is '{}'; expected sliding_attention, compressed_sparse_attention or "
           "heavily_compressed_attention",
           fields.label(), i, kind);
    }
  }
  return ratios;
}

// mlp_layer_types: hash_moe layers first, then moe.
int64_t hash_layers_from_mlp_layer_types(const FieldReader& fields, const json& types, int64_t num_layers) {
  if (!types.is_array()) fail("{}: field 'mlp_layer_types' must be a list, got {}", fields.label(), short_dump(types));
  if (static_cast<int64_t>(types.size()) != num_layers) {
    fail("{}: field 'mlp_layer_types' has {} entries; num_hidden_layers is {}", fields.label(), types.size(),
         num_layers);
  }
  int64_t hash_layers = 0;
  bool seen_moe = false;
  for (size_t i = 0; i < types.size(); ++i) {
    const json& t = types[i];
    const std::string kind = t.is_string() ? t.get<std::string>() : std::string();
    if (kind == "hash_moe") {
      if (seen_moe) fail("{}: mlp_layer_types[{}] is hash_moe after a moe layer; hash layers must come first",
                         fields.label(), i);
      ++hash_layers;
    } else if (kind == "moe") {
      seen_moe = true;
    } else {
      fail("{}: mlp_layer_types[{}] is {}; expected \"hash_moe\" or \"moe\"", fields.label(), i, short_dump(t));
    }
  }
  return hash_layers;
}

// The YaRN parameters of the compressed layers and the two RoPE bases, from
// DeepSeek's rope_scaling, ModelArgs' flat keys, or transformers' rope_parameters
// (nested {main, compress} or flat).
void parse_rope(const FieldReader& fields, const json& config, ModelConfig& out) {
  std::optional<double> main_theta = fields.optional_number({"rope_theta"});
  std::optional<double> compress_theta = fields.optional_number({"compress_rope_theta"});
  YarnConfig yarn;
  bool have_yarn = false;

  auto read_yarn = [&](const json& block, const std::string& where) {
    if (!block.is_object()) fail("{}: field '{}' must be an object, got {}", fields.label(), where, short_dump(block));
    FieldReader r(block, fields.label() + " " + where);
    const std::string type = r.optional_string({"rope_type", "type"}).value_or("default");
    if (type == "default") return;
    if (type != "yarn") fail("{}: {}.rope_type is '{}'; only yarn and default are supported", fields.label(), where, type);
    YarnConfig y;
    y.factor = r.number_or({"factor"}, 1.0);
    y.original_max_position = r.integer({"original_max_position_embeddings"});
    y.beta_fast = r.number_or({"beta_fast"}, 32.0);
    y.beta_slow = r.number_or({"beta_slow"}, 1.0);
    if (auto attention_factor = r.optional_number({"attention_factor", "mscale"}); attention_factor &&
                                                                                   *attention_factor != 1.0) {
      fail("{}: {}.attention_factor is {}; DeepSeek-V4 applies no YaRN magnitude scaling (must be 1)", fields.label(),
           where, *attention_factor);
    }
    if (have_yarn && (y.factor != yarn.factor || y.original_max_position != yarn.original_max_position ||
                      y.beta_fast != yarn.beta_fast || y.beta_slow != yarn.beta_slow)) {
      fail("{}: YaRN parameters in '{}' disagree with those given elsewhere", fields.label(), where);
    }
    yarn = y;
    have_yarn = true;
  };
  auto agree_theta = [&](std::optional<double>& theta, const json& block, const std::string& where,
                         const char* top_level) {
    FieldReader r(block, fields.label() + " " + where);
    auto value = r.optional_number({"rope_theta"});
    if (!value) return;
    if (theta && *theta != *value)
      fail("{}: {}.rope_theta ({}) disagrees with '{}' ({})", fields.label(), where, *value, top_level, *theta);
    theta = value;
  };

  if (auto it = config.find("rope_scaling"); it != config.end() && !it->is_null()) read_yarn(*it, "rope_scaling");
  if (auto it = config.find("rope_parameters"); it != config.end() && !it->is_null()) {
    if (!it->is_object()) fail("{}: field 'rope_parameters' must be an object", fields.label());
    if (it->contains("main") || it->contains("compress")) {
      for (const char* part : {"main", "compress"}) {
        if (it->contains(part) && !it->at(part).is_object())
          fail("{}: rope_parameters.{} must be an object", fields.label(), part);
      }
      if (it->contains("main")) {
        agree_theta(main_theta, it->at("main"), "rope_parameters.main", "rope_theta");
        FieldReader m(it->at("main"), fields.label() + " rope_parameters.main");
        if (m.optional_string({"rope_type", "type"}).value_or("default") != "default")
          fail("{}: rope_parameters.main must be default RoPE (sliding-window layers get no YaRN)", fields.label());
      }
      if (it->contains("compress")) {
        agree_theta(compress_theta, it->at("compress"), "rope_parameters.compress", "compress_rope_theta");
        read_yarn(it->at("compress"), "rope_parameters.compress");
      }
    } else {
      read_yarn(*it, "rope_parameters");  // flattened: the YaRN of the compressed layers
    }
  }
  if (fields.find({"original_seq_len"}) || fields.find({"rope_factor"})) {
    YarnConfig y;
    y.factor = fields.number_or({"rope_factor"}, 1.0);
    y.original_max_position = fields.integer({"original_seq_len"});
    y.beta_fast = fields.number_or({"beta_fast"}, 32.0);
    y.beta_slow = fields.number_or({"beta_slow"}, 1.0);
    if (have_yarn && (y.factor != yarn.factor || y.original_max_position != yarn.original_max_position))
      fail("{}: original_seq_len/rope_factor disagree with the YaRN parameters given elsewhere", fields.label());
    if (y.factor != 1.0) {
      yarn = y;
      have_yarn = true;
    }
  }
  out.rope_theta = main_theta.value_or(10000.0);
  out.compress_rope_theta = compress_theta.value_or(160000.0);
  if (have_yarn) out.yarn = yarn;
}

void reject_unsupported(const FieldReader& fields, ModelConfig& out) {
  if (auto model_type = fields.optional_string({"model_type"}); model_type && *model_type != "deepseek_v4")
    fail("{}: model_type is '{}'; fp4serve serves DeepSeek-V4 (deepseek_v4) only", fields.label(), *model_type);
  if (auto kv_heads = fields.optional_integer({"num_key_value_heads", "n_kv_heads"}); kv_heads && *kv_heads != 1)
    fail("{}: num_key_value_heads is {}; DeepSeek-V4 has one shared K=V head", fields.label(), *kv_heads);
  if (fields.optional_bool({"attention_bias"}).value_or(false))
    fail("{}: attention_bias is true; DeepSeek-V4 projections have no bias", fields.label());
  if (auto act = fields.optional_string({"hidden_act"}); act && *act != "silu")
    fail("{}: hidden_act is '{}'; only silu is supported", fields.label(), *act);
  if (auto method = fields.optional_string({"topk_method"}); method && *method != "noaux_tc")
    fail("{}: topk_method is '{}'; only noaux_tc is supported", fields.label(), *method);
  if (out.scoring_func != "sqrtsoftplus" && out.scoring_func != "softmax" && out.scoring_func != "sigmoid")
    fail("{}: scoring_func is '{}'; expected sqrtsoftplus, softmax or sigmoid", fields.label(), out.scoring_func);
  if (out.tie_word_embeddings)
    fail("{}: tie_word_embeddings is true; DeepSeek-V4 has an untied head", fields.label());
}

}  // namespace

ModelConfig parse_model_config(const json& config, const std::string& label) {
  if (!config.is_object()) fail("{}: expected a JSON object at top level", label);
  FieldReader f(config, label);
  ModelConfig c;
  c.vocab_size = f.integer({"vocab_size"});
  c.hidden_size = f.integer({"hidden_size", "dim"});
  c.num_layers = f.integer({"num_hidden_layers", "n_layers"});
  c.num_mtp_layers = f.integer_or({"num_nextn_predict_layers", "n_mtp_layers"}, 1);
  c.num_heads = f.integer({"num_attention_heads", "n_heads"});
  c.head_dim = f.integer({"head_dim"});
  c.q_lora_rank = f.integer({"q_lora_rank"});
  c.o_lora_rank = f.integer({"o_lora_rank"});
  c.o_groups = f.integer({"o_groups"});
  c.sliding_window = f.integer({"sliding_window", "window_size"});
  c.max_position_embeddings = f.integer_or({"max_position_embeddings"}, 0);
  c.index_n_heads = f.integer({"index_n_heads"});
  c.index_head_dim = f.integer({"index_head_dim"});
  c.index_topk = f.integer({"index_topk"});
  c.n_routed_experts = f.integer({"n_routed_experts"});
  c.n_shared_experts = f.integer({"n_shared_experts"});
  c.experts_per_token = f.integer({"num_experts_per_tok", "n_activated_experts"});
  c.moe_intermediate_size = f.integer({"moe_intermediate_size", "moe_inter_dim"});
  c.scoring_func = f.optional_string({"scoring_func", "score_func"}).value_or("sqrtsoftplus");
  c.norm_topk_prob = f.optional_bool({"norm_topk_prob"}).value_or(true);
  c.routed_scaling_factor = f.number_or({"routed_scaling_factor", "route_scale"}, 1.0);
  c.swiglu_limit = f.number_or({"swiglu_limit"}, 0.0);
  c.hc_mult = f.integer({"hc_mult"});
  c.hc_sinkhorn_iters = f.integer({"hc_sinkhorn_iters"});
  c.hc_eps = f.number_or({"hc_eps"}, 1e-6);
  c.rms_norm_eps = f.number_or({"rms_norm_eps", "norm_eps"}, 1e-6);
  c.bos_token_id = f.integer_or({"bos_token_id"}, 0);
  if (auto eos = f.find({"eos_token_id"}); eos && eos->second->is_array()) {
    if (eos->second->empty()) fail("{}: field 'eos_token_id' is an empty list", label);
    c.eos_token_id = f.as_integer("eos_token_id[0]", eos->second->at(0));
  } else {
    c.eos_token_id = f.integer_or({"eos_token_id"}, 1);
  }
  c.tie_word_embeddings = f.optional_bool({"tie_word_embeddings"}).value_or(false);
  reject_unsupported(f, c);

  if (c.num_layers <= 0 || c.num_layers > kMaxLayers)
    fail("{}: num_hidden_layers is {}; expected 1..{}", label, c.num_layers, kMaxLayers);
  if (c.num_mtp_layers < 0 || c.num_mtp_layers > kMaxMtpLayers)
    fail("{}: num_nextn_predict_layers is {}; expected 0..{}", label, c.num_mtp_layers, kMaxMtpLayers);

  // RoPE dims: qk_rope_head_dim directly, or partial_rotary_factor of head_dim.
  std::optional<int64_t> rope_dim = f.optional_integer({"qk_rope_head_dim", "rope_head_dim"});
  if (auto factor = f.optional_number({"partial_rotary_factor"})) {
    const double dims = *factor * static_cast<double>(c.head_dim);
    if (!(dims >= 0 && dims <= double(kMaxDimension)) || dims != std::floor(dims))
      fail("{}: partial_rotary_factor {} times head_dim {} is not a whole number of dims", label, *factor, c.head_dim);
    if (rope_dim && *rope_dim != static_cast<int64_t>(dims))
      fail("{}: qk_rope_head_dim ({}) disagrees with partial_rotary_factor x head_dim ({})", label, *rope_dim, dims);
    rope_dim = static_cast<int64_t>(dims);
  }
  if (!rope_dim) fail("{}: missing field 'qk_rope_head_dim' (or 'partial_rotary_factor')", label);
  c.rope_head_dim = *rope_dim;

  // Layer schedule: compress_ratios (DeepSeek) and/or layer_types (transformers).
  std::optional<std::vector<int64_t>> from_ratios;
  std::optional<std::vector<int64_t>> from_types;
  if (auto it = config.find("compress_ratios"); it != config.end() && !it->is_null())
    from_ratios = ratios_from_compress_ratios(f, *it, c.num_layers, c.num_mtp_layers);
  if (auto it = config.find("layer_types"); it != config.end() && !it->is_null())
    from_types = ratios_from_layer_types(f, config, c.num_layers);
  if (!from_ratios && !from_types) fail("{}: missing field 'compress_ratios' (or 'layer_types')", label);
  if (from_ratios && from_types) {
    for (int64_t i = 0; i < c.num_layers; ++i) {
      if ((*from_ratios)[size_t(i)] != (*from_types)[size_t(i)])
        fail("{}: compress_ratios[{}] = {} disagrees with layer_types[{}] (ratio {})", label, i,
             (*from_ratios)[size_t(i)], i, (*from_types)[size_t(i)]);
    }
  }
  c.compress_ratios = from_ratios ? *from_ratios : *from_types;
  // The MTP blocks are sliding-window layers; fill their ratio when only main layers are listed.
  while (static_cast<int64_t>(c.compress_ratios.size()) < c.num_layers + c.num_mtp_layers) c.compress_ratios.push_back(0);

  // Hash routing: num_hash_layers (DeepSeek) and/or mlp_layer_types (transformers).
  std::optional<int64_t> hash_layers = f.optional_integer({"num_hash_layers", "n_hash_layers"});
  if (auto it = config.find("mlp_layer_types"); it != config.end() && !it->is_null()) {
    const int64_t from_types_count = hash_layers_from_mlp_layer_types(f, *it, c.num_layers);
    if (hash_layers && *hash_layers != from_types_count)
      fail("{}: num_hash_layers ({}) disagrees with mlp_layer_types ({} hash_moe layers)", label, *hash_layers,
           from_types_count);
    hash_layers = from_types_count;
  }
  if (!hash_layers) fail("{}: missing field 'num_hash_layers' (or 'mlp_layer_types')", label);
  c.num_hash_layers = *hash_layers;

  parse_rope(f, config, c);
  validate_model_config(c, label);
  return c;
}

void validate_model_config(const ModelConfig& c, const std::string& label) {
  auto positive = [&](int64_t value, const char* field) {
    if (value <= 0 || value > kMaxDimension) fail("{}: {} is {}; expected 1..{}", label, field, value, kMaxDimension);
  };
  positive(c.vocab_size, "vocab_size");
  positive(c.hidden_size, "hidden_size");
  positive(c.num_layers, "num_hidden_layers");
  positive(c.num_heads, "num_attention_heads");
  positive(c.head_dim, "head_dim");
  positive(c.rope_head_dim, "qk_rope_head_dim");
  positive(c.q_lora_rank, "q_lora_rank");
  positive(c.o_lora_rank, "o_lora_rank");
  positive(c.o_groups, "o_groups");
  positive(c.sliding_window, "sliding_window");
  positive(c.n_routed_experts, "n_routed_experts");
  positive(c.experts_per_token, "num_experts_per_tok");
  positive(c.moe_intermediate_size, "moe_intermediate_size");
  positive(c.hc_mult, "hc_mult");
  positive(c.hc_sinkhorn_iters, "hc_sinkhorn_iters");
  if (c.n_shared_experts < 0 || c.n_shared_experts > 1)
    fail("{}: n_shared_experts is {}; DeepSeek-V4 has 0 or 1 shared expert", label, c.n_shared_experts);
  if (c.rope_head_dim >= c.head_dim || c.rope_head_dim % 2 != 0)
    fail("{}: qk_rope_head_dim {} must be even and smaller than head_dim {}", label, c.rope_head_dim, c.head_dim);
  if (c.num_heads % c.o_groups != 0)
    fail("{}: num_attention_heads {} is not a multiple of o_groups {}", label, c.num_heads, c.o_groups);
  if (c.experts_per_token > c.n_routed_experts)
    fail("{}: num_experts_per_tok {} exceeds n_routed_experts {}", label, c.experts_per_token, c.n_routed_experts);
  if (c.num_hash_layers < 0 || c.num_hash_layers > c.num_layers)
    fail("{}: num_hash_layers is {}; expected 0..{} (num_hidden_layers)", label, c.num_hash_layers, c.num_layers);
  if (static_cast<int64_t>(c.compress_ratios.size()) != c.num_layers + c.num_mtp_layers)
    fail("{}: {} compress ratios for {} layers + {} MTP layers", label, c.compress_ratios.size(), c.num_layers,
         c.num_mtp_layers);
  bool any_csa = false;
  for (size_t i = 0; i < c.compress_ratios.size(); ++i) {
    const int64_t r = c.compress_ratios[i];
    if (r < 0 || r > kMaxDimension) fail("{}: compress_ratios[{}] is {}; expected >= 0", label, i, r);
    if (static_cast<int64_t>(i) >= c.num_layers && r != 0)
      fail("{}: compress_ratios[{}] is {}; MTP layers are sliding-window layers (ratio 0)", label, i, r);
    any_csa = any_csa || r == 4;
  }
  if (any_csa) {
    positive(c.index_n_heads, "index_n_heads");
    positive(c.index_head_dim, "index_head_dim");
    positive(c.index_topk, "index_topk");
    if (c.index_head_dim <= c.rope_head_dim)
      fail("{}: index_head_dim {} must exceed qk_rope_head_dim {}", label, c.index_head_dim, c.rope_head_dim);
  }
  if (!(c.rms_norm_eps > 0) || !(c.hc_eps > 0)) fail("{}: rms_norm_eps and hc_eps must be positive", label);
  if (!(c.rope_theta > 0) || !(c.compress_rope_theta > 0)) fail("{}: rope_theta values must be positive", label);
  if (!(c.yarn.factor >= 1.0)) fail("{}: YaRN factor is {}; expected >= 1", label, c.yarn.factor);
  if (c.yarn.factor > 1.0 && c.yarn.original_max_position <= 0)
    fail("{}: YaRN original_max_position_embeddings must be positive", label);
  if (!(c.routed_scaling_factor > 0)) fail("{}: routed_scaling_factor must be positive", label);
  if (c.swiglu_limit < 0) fail("{}: swiglu_limit must not be negative", label);
}

ModelConfig parse_model_config_text(std::string_view text, const std::string& label) {
  json config = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded()) fail("{}: not valid JSON", label);
  return parse_model_config(config, label);
}

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) fail("{}: not valid JSON", path);
  return value;
}

}  // namespace fp4serve
