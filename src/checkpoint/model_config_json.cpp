#include "checkpoint/model_config_json.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "base/error.h"
#include "checkpoint/config_field_reader.h"
#include "checkpoint/draft_config.h"

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

// compress_ratios: one entry per main layer, optionally followed by one per draft block
// (`draft_blocks` of them; -1 = not known yet, any number of trailing entries then counts).
std::vector<int64_t> ratios_from_compress_ratios(const FieldReader& fields, const json& list, int64_t num_layers,
                                                 int64_t draft_blocks, const char* draft_name) {
  if (!list.is_array()) fail("{}: field 'compress_ratios' must be a list, got {}", fields.label(), short_dump(list));
  const int64_t n = static_cast<int64_t>(list.size());
  const bool any_tail = draft_blocks < 0 && n > num_layers && n - num_layers <= kMaxMtpLayers;
  if (n != num_layers && n != num_layers + draft_blocks && !any_tail) {
    if (draft_blocks < 0)
      fail("{}: field 'compress_ratios' has {} entries; expected {} (num_hidden_layers) plus at most {} {} entries",
           fields.label(), n, num_layers, kMaxMtpLayers, draft_name);
    fail("{}: field 'compress_ratios' has {} entries; expected {} (num_hidden_layers) or {} (plus {} {})",
         fields.label(), n, num_layers, num_layers + draft_blocks, draft_blocks, draft_name);
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

// The draft module: DSpark when config.json has dspark_* keys or the index holds
// mtp.0.main_proj (draft_config.h says why), else classic MTP from num_nextn_predict_layers.
// Sets num_mtp_layers and draft; the DSpark stage count may stay 0 here (known from
// compress_ratios, n_mtp_layers or the index).
void read_draft(const FieldReader& f, const DraftEvidence& index, ModelConfig& c) {
  bool any_key = false;
  for (const char* key : kDsparkKeys) any_key = any_key || f.find({key}).has_value();
  if (!any_key && !index.dspark_tensors) {
    c.num_mtp_layers = f.integer_or({"num_nextn_predict_layers", "n_mtp_layers"}, 1);
    if (c.num_mtp_layers < 0 || c.num_mtp_layers > kMaxMtpLayers)
      fail("{}: num_nextn_predict_layers is {}; expected 0..{}", f.label(), c.num_mtp_layers, kMaxMtpLayers);
    if (c.num_mtp_layers > 0) {
      c.draft.kind = DraftKind::kMtp;
      c.draft.num_stages = c.num_mtp_layers;
      c.draft.block_size = 1;
    }
    c.draft.sliding_window = c.sliding_window;
    return;
  }
  if (index.known && index.mtp_tensors)
    fail("{}: the config or the index says DSpark draft (dspark_* keys / mtp.0.main_proj) but {} holds a classic MTP "
         "head (mtp.0.e_proj); a checkpoint carries one or the other",
         f.label(), index.origin);
  DraftConfig& d = c.draft;
  d.kind = DraftKind::kDSpark;
  c.num_mtp_layers = 0;  // num_nextn_predict_layers stays 1 in the DSpark releases: never read for them
  d.sliding_window = c.sliding_window;
  d.has_markov_head = true;
  d.has_confidence_head = true;
  // n_mtp_layers is inference/config.json's stage count (the HF config has none).
  d.num_stages = f.integer_or({"n_mtp_layers"}, 0);
  if (d.num_stages < 0 || d.num_stages > kMaxMtpLayers)
    fail("{}: n_mtp_layers is {}; expected 1..{} DSpark stages", f.label(), d.num_stages, kMaxMtpLayers);
  if (index.known && index.stages > 0) {
    if (d.num_stages > 0 && d.num_stages != index.stages)
      fail("{}: n_mtp_layers is {} but {} holds DSpark stages mtp.0..mtp.{}", f.label(), d.num_stages, index.origin,
           index.stages - 1);
    d.num_stages = index.stages;
  }
  if (any_key) {
    for (const char* key : kDsparkKeys)
      if (!f.find({key})) fail("{}: missing field '{}' (a DSpark config carries all of {})", f.label(), key,
                               "dspark_block_size, dspark_noise_token_id, dspark_target_layer_ids, dspark_markov_rank");
    d.block_size = f.integer({"dspark_block_size"});
    d.noise_token_id = f.integer({"dspark_noise_token_id"});
    d.markov_rank = f.integer({"dspark_markov_rank"});
    const json& ids = *f.find({"dspark_target_layer_ids"})->second;
    if (!ids.is_array())
      fail("{}: field 'dspark_target_layer_ids' must be a list, got {}", f.label(), short_dump(ids));
    if (ids.size() > static_cast<size_t>(kMaxLayers))
      fail("{}: field 'dspark_target_layer_ids' has {} entries", f.label(), ids.size());
    for (size_t i = 0; i < ids.size(); ++i)
      d.target_layer_ids.push_back(f.as_integer(fmt::format("dspark_target_layer_ids[{}]", i), ids[i]));
    return;
  }
  // Found in the index only: DeepSeek's released values where the tensors do not tell.
  d.inferred_parameters = true;
  d.block_size = kReleasedDsparkBlockSize;
  d.noise_token_id = c.vocab_size == kDeepSeekV4VocabSize ? kReleasedDsparkNoiseTokenId : -1;
  d.markov_rank = index.markov_rank;
  if (c.hidden_size > 0 && index.main_proj_in > 0 && index.main_proj_in % c.hidden_size == 0) {
    const int64_t taps = index.main_proj_in / c.hidden_size;
    for (int64_t j = std::max<int64_t>(0, c.num_layers - taps); j < c.num_layers; ++j) d.target_layer_ids.push_back(j);
  }
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

ModelConfig parse_model_config(const json& config, const std::string& label, const DraftEvidence& index) {
  if (!config.is_object()) fail("{}: expected a JSON object at top level", label);
  FieldReader f(config, label);
  ModelConfig c;
  c.vocab_size = f.integer({"vocab_size"});
  c.hidden_size = f.integer({"hidden_size", "dim"});
  c.num_layers = f.integer({"num_hidden_layers", "n_layers"});
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
  read_draft(f, index, c);
  const bool dspark = c.draft.kind == DraftKind::kDSpark;
  const char* draft_name = dspark ? "DSpark stage" : "MTP";

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
    from_ratios = ratios_from_compress_ratios(f, *it, c.num_layers,
                                              dspark && c.draft.num_stages == 0 ? -1 : c.num_draft_blocks(), draft_name);
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
  // The DSpark releases list their stages' ratios (V4-Flash-0731: 43 layers + ", 0, 0, 0").
  if (dspark && c.draft.num_stages == 0) c.draft.num_stages = static_cast<int64_t>(c.compress_ratios.size()) - c.num_layers;
  // Draft blocks are sliding-window layers; fill their ratio when only main layers are listed.
  while (static_cast<int64_t>(c.compress_ratios.size()) < c.num_layers + c.num_draft_blocks()) c.compress_ratios.push_back(0);

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

namespace {

void validate_draft(const ModelConfig& c, const std::string& label) {
  const DraftConfig& d = c.draft;
  switch (d.kind) {
    case DraftKind::kNone:
    case DraftKind::kMtp:
      if (c.num_mtp_layers < 0 || c.num_mtp_layers > kMaxMtpLayers)
        fail("{}: num_nextn_predict_layers is {}; expected 0..{}", label, c.num_mtp_layers, kMaxMtpLayers);
      return;
    case DraftKind::kDSpark: break;
  }
  if (c.num_mtp_layers != 0) fail("{}: a DSpark checkpoint has no classic MTP layers", label);
  if (d.num_stages <= 0 || d.num_stages > kMaxMtpLayers)
    fail("{}: the DSpark draft has {} stages; expected 1..{} (from n_mtp_layers, the compress_ratios entries after "
         "num_hidden_layers, or the index's mtp.N)",
         label, d.num_stages, kMaxMtpLayers);
  // Block position 0 is the anchor; 1..block_size-1 are noise. The released drafts use 5.
  if (d.block_size <= 0 || d.block_size > 64)
    fail("{}: dspark_block_size is {}; expected 1..64", label, d.block_size);
  if (d.noise_token_id >= c.vocab_size || (d.noise_token_id < 0 && !d.inferred_parameters))
    fail("{}: dspark_noise_token_id is {}; expected 0..{} (vocab_size - 1)", label, d.noise_token_id,
         c.vocab_size - 1);
  if (d.markov_rank <= 0 || d.markov_rank > kMaxDimension)
    fail("{}: dspark_markov_rank is {}; expected 1..{}", label, d.markov_rank, kMaxDimension);
  if (d.target_layer_ids.empty()) fail("{}: dspark_target_layer_ids is empty; the draft taps at least one layer", label);
  for (size_t i = 0; i < d.target_layer_ids.size(); ++i) {
    const int64_t id = d.target_layer_ids[i];
    if (id < 0 || id >= c.num_layers)
      fail("{}: dspark_target_layer_ids[{}] is {}; expected 0..{} (num_hidden_layers - 1)", label, i, id,
           c.num_layers - 1);
    for (size_t k = 0; k < i; ++k)
      if (d.target_layer_ids[k] == id) fail("{}: dspark_target_layer_ids lists layer {} twice", label, id);
  }
  if (d.sliding_window <= 0) fail("{}: the DSpark draft needs a sliding_window", label);
}

}  // namespace

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
  validate_draft(c, label);
  if (static_cast<int64_t>(c.compress_ratios.size()) != c.num_layers + c.num_draft_blocks())
    fail("{}: {} compress ratios for {} layers + {} {}", label, c.compress_ratios.size(), c.num_layers,
         c.num_draft_blocks(), c.draft.kind == DraftKind::kDSpark ? "DSpark stages" : "MTP layers");
  bool any_csa = false;
  for (size_t i = 0; i < c.compress_ratios.size(); ++i) {
    const int64_t r = c.compress_ratios[i];
    if (r < 0 || r > kMaxDimension) fail("{}: compress_ratios[{}] is {}; expected >= 0", label, i, r);
    if (static_cast<int64_t>(i) >= c.num_layers && r != 0)
      fail("{}: compress_ratios[{}] is {}; {} are sliding-window layers (ratio 0)", label, i, r,
           c.draft.kind == DraftKind::kDSpark ? "DSpark stages" : "MTP layers");
    any_csa = any_csa || r == 4;
  }
  if (any_csa) {
    positive(c.index_n_heads, "index_n_heads");
    positive(c.index_head_dim, "index_head_dim");
    positive(c.index_topk, "index_topk");
    // The indexer ropes the last qk_rope_head_dim dims of its index_head_dim; equal sizes rope them
    // all, which DeepSeek's inference/model.py and transformers both run.
    if (c.index_head_dim < c.rope_head_dim)
      fail("{}: index_head_dim {} is smaller than qk_rope_head_dim {} (the indexer ropes its last qk_rope_head_dim "
           "dims)",
           label, c.index_head_dim, c.rope_head_dim);
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
