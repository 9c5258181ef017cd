#include "checkpoint/naming_scheme.h"

#include <array>
#include <unordered_map>

#include "base/error.h"

namespace fp4serve {
namespace {

enum class Kind : uint8_t { kTensor, kLinear, kFusedGateUp, kFusedDown };

// One row per canonical name, relative to its block ("layers.{L}." / "mtp.{J}.") or global.
// Columns: the name in DeepSeek's scheme (= canonical), in transformers-saved, in transformers.
// nullptr = the scheme has no such tensor. {E} is the expert index.
struct Row {
  Kind kind;
  const char* canonical;
  const char* saved;
  const char* transformers;
};

constexpr Row kBlockRows[] = {
    {Kind::kTensor, "attn_norm.weight", "attn_norm.weight", "input_layernorm.weight"},
    {Kind::kTensor, "ffn_norm.weight", "ffn_norm.weight", "post_attention_layernorm.weight"},
    {Kind::kTensor, "hc_attn_fn", "hc_attn_fn", "attn_hc.fn"},
    {Kind::kTensor, "hc_attn_base", "hc_attn_base", "attn_hc.base"},
    {Kind::kTensor, "hc_attn_scale", "hc_attn_scale", "attn_hc.scale"},
    {Kind::kTensor, "hc_ffn_fn", "hc_ffn_fn", "ffn_hc.fn"},
    {Kind::kTensor, "hc_ffn_base", "hc_ffn_base", "ffn_hc.base"},
    {Kind::kTensor, "hc_ffn_scale", "hc_ffn_scale", "ffn_hc.scale"},
    {Kind::kTensor, "attn.attn_sink", "attn.attn_sink", "self_attn.sinks"},
    {Kind::kLinear, "attn.wq_a", "attn.wq_a", "self_attn.q_a_proj"},
    {Kind::kTensor, "attn.q_norm.weight", "attn.q_norm.weight", "self_attn.q_a_norm.weight"},
    {Kind::kLinear, "attn.wq_b", "attn.wq_b", "self_attn.q_b_proj"},
    {Kind::kLinear, "attn.wkv", "attn.wkv", "self_attn.kv_proj"},
    // The attention's kv_norm: save_pretrained writes it as attn.norm (not to be confused
    // with the compressor's norm, which transformers calls compressor.kv_norm).
    {Kind::kTensor, "attn.kv_norm.weight", "attn.norm.weight", "self_attn.kv_norm.weight"},
    {Kind::kLinear, "attn.wo_a", "attn.wo_a", "self_attn.o_a_proj"},
    {Kind::kLinear, "attn.wo_b", "attn.wo_b", "self_attn.o_b_proj"},
    {Kind::kLinear, "attn.compressor.wkv", "attn.compressor.wkv", "self_attn.compressor.kv_proj"},
    {Kind::kLinear, "attn.compressor.wgate", "attn.compressor.wgate", "self_attn.compressor.gate_proj"},
    // position_bias is the compressor's learned positional bias: DeepSeek's `ape`.
    {Kind::kTensor, "attn.compressor.ape", "attn.compressor.ape", "self_attn.compressor.position_bias"},
    {Kind::kTensor, "attn.compressor.norm.weight", "attn.compressor.norm.weight", "self_attn.compressor.kv_norm.weight"},
    {Kind::kLinear, "attn.indexer.wq_b", "attn.indexer.wq_b", "self_attn.compressor.indexer.q_b_proj"},
    {Kind::kLinear, "attn.indexer.weights_proj", "attn.indexer.weights_proj",
     "self_attn.compressor.indexer.scorer.weights_proj"},
    {Kind::kLinear, "attn.indexer.compressor.wkv", "attn.indexer.compressor.wkv", "self_attn.compressor.indexer.kv_proj"},
    {Kind::kLinear, "attn.indexer.compressor.wgate", "attn.indexer.compressor.wgate",
     "self_attn.compressor.indexer.gate_proj"},
    {Kind::kTensor, "attn.indexer.compressor.ape", "attn.indexer.compressor.ape",
     "self_attn.compressor.indexer.position_bias"},
    {Kind::kTensor, "attn.indexer.compressor.norm.weight", "attn.indexer.compressor.norm.weight",
     "self_attn.compressor.indexer.kv_norm.weight"},
    {Kind::kLinear, "ffn.gate", "ffn.gate", "mlp.gate"},
    {Kind::kTensor, "ffn.gate.bias", "ffn.gate.bias", "mlp.gate.e_score_correction_bias"},
    {Kind::kTensor, "ffn.gate.tid2eid", "ffn.gate.tid2eid", "mlp.gate.tid2eid"},
    {Kind::kLinear, "ffn.shared_experts.w1", "ffn.shared_experts.w1", "mlp.shared_experts.gate_proj"},
    {Kind::kLinear, "ffn.shared_experts.w2", "ffn.shared_experts.w2", "mlp.shared_experts.down_proj"},
    {Kind::kLinear, "ffn.shared_experts.w3", "ffn.shared_experts.w3", "mlp.shared_experts.up_proj"},
    {Kind::kLinear, "ffn.experts.{E}.w1", "ffn.experts.{E}.w1", "mlp.experts.{E}.gate_proj"},
    {Kind::kLinear, "ffn.experts.{E}.w2", "ffn.experts.{E}.w2", "mlp.experts.{E}.down_proj"},
    {Kind::kLinear, "ffn.experts.{E}.w3", "ffn.experts.{E}.w3", "mlp.experts.{E}.up_proj"},
    // transformers fuses all experts of a layer: gate_up_proj [E, 2I, D] (w1 rows first), down_proj [E, D, I].
    {Kind::kFusedGateUp, "ffn.experts", nullptr, "mlp.experts.gate_up_proj"},
    {Kind::kFusedDown, "ffn.experts", nullptr, "mlp.experts.down_proj"},
};

// MTP-only members, under "mtp.{J}." in every scheme (with the block rows in DeepSeek's names).
constexpr Row kMtpRows[] = {
    {Kind::kLinear, "e_proj", "e_proj", "e_proj"},
    {Kind::kLinear, "h_proj", "h_proj", "h_proj"},
    {Kind::kTensor, "enorm.weight", "enorm.weight", "enorm.weight"},
    {Kind::kTensor, "hnorm.weight", "hnorm.weight", "hnorm.weight"},
    {Kind::kTensor, "norm.weight", "norm.weight", "norm.weight"},
    {Kind::kTensor, "hc_head_fn", "hc_head_fn", "hc_head_fn"},
    {Kind::kTensor, "hc_head_base", "hc_head_base", "hc_head_base"},
    {Kind::kTensor, "hc_head_scale", "hc_head_scale", "hc_head_scale"},
};

// DSpark-only members (DeepSeek-V4-Flash-0731's mtp.0..2), under "mtp.{J}." in every scheme.
constexpr Row kDsparkRows[] = {
    {Kind::kLinear, "main_proj", "main_proj", "main_proj"},
    {Kind::kTensor, "main_norm.weight", "main_norm.weight", "main_norm.weight"},
    {Kind::kTensor, "markov_head.markov_w1.weight", "markov_head.markov_w1.weight", "markov_head.markov_w1.weight"},
    {Kind::kLinear, "markov_head.markov_w2", "markov_head.markov_w2", "markov_head.markov_w2"},
    {Kind::kLinear, "confidence_head.proj", "confidence_head.proj", "confidence_head.proj"},
};

constexpr Row kGlobalRows[] = {
    {Kind::kTensor, "embed.weight", "model.embed_tokens.weight", "model.embed_tokens.weight"},
    {Kind::kLinear, "head", "head", "lm_head"},
    {Kind::kTensor, "norm.weight", "model.norm.weight", "model.norm.weight"},
    {Kind::kTensor, "hc_head_fn", "model.hc_head.hc_fn", "model.hc_head.hc_fn"},
    {Kind::kTensor, "hc_head_base", "model.hc_head.hc_base", "model.hc_head.hc_base"},
    {Kind::kTensor, "hc_head_scale", "model.hc_head.hc_scale", "model.hc_head.hc_scale"},
};

struct LayerPrefix {
  const char* canonical;
  const char* saved;
  const char* transformers;
};
constexpr LayerPrefix kLayerPrefix = {"layers.{L}.", "model.layers.{L}.", "model.layers.{L}."};
constexpr const char* kMtpPrefix = "mtp.{J}.";

// Suffixes of a linear's stored tensors, and what each is.
struct Suffix {
  const char* name;
  TensorRole role;
};
constexpr Suffix kLinearSuffixes[] = {
    {"weight", TensorRole::kLinearWeight},       {"scale", TensorRole::kBlockScale},
    {"weight_scale_inv", TensorRole::kBlockScale}, {"weight_scale", TensorRole::kBlockScale},
    {"weight_scale_2", TensorRole::kGlobalScale},  {"input_scale", TensorRole::kInputScale},
};

const char* column(const Row& row, NamingScheme scheme) {
  switch (scheme) {
    case NamingScheme::kDeepSeekNative: return row.kind == Kind::kTensor || row.kind == Kind::kLinear ? row.canonical
                                                                                                      : nullptr;
    case NamingScheme::kTransformersSaved: return row.saved;
    case NamingScheme::kTransformers: return row.transformers;
  }
  return nullptr;
}

const char* layer_prefix(NamingScheme scheme) {
  switch (scheme) {
    case NamingScheme::kDeepSeekNative: return kLayerPrefix.canonical;
    case NamingScheme::kTransformersSaved: return kLayerPrefix.saved;
    case NamingScheme::kTransformers: return kLayerPrefix.transformers;
  }
  return nullptr;
}

bool is_index(std::string_view token) {
  if (token.empty() || token.size() > 9) return false;
  if (token.size() > 1 && token[0] == '0') return false;
  for (char ch : token)
    if (ch < '0' || ch > '9') return false;
  return true;
}

bool is_placeholder(std::string_view token) { return token == "{L}" || token == "{E}" || token == "{J}"; }

// "model.layers.3.mlp.experts.17.gate_proj.weight" -> key "model.layers.#.mlp.experts.#.gate_proj.weight",
// indices {3, 17}. Patterns generalize their placeholders the same way.
std::string generalize(std::string_view name, std::vector<std::string>* indices) {
  std::string key;
  size_t start = 0;
  while (true) {
    const size_t dot = name.find('.', start);
    const std::string_view token = name.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (!key.empty() || start > 0) key += '.';
    if (is_index(token) || is_placeholder(token)) {
      key += '#';
      if (indices) indices->emplace_back(token);
    } else {
      key += token;
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return key;
}

// Replaces the '#' components of `key` by `indices`, in order.
std::string instantiate(const std::string& key, const std::vector<std::string>& indices) {
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < key.size(); ++i) {
    const bool whole_component = key[i] == '#' && (i == 0 || key[i - 1] == '.') &&
                                 (i + 1 == key.size() || key[i + 1] == '.');
    if (whole_component && next < indices.size()) {
      out += indices[next++];
    } else {
      out += key[i];
    }
  }
  return out;
}

struct Target {
  TensorRole role;
  std::string canonical_key;  // generalized canonical name (module for linear roles)
  std::string suffix;
};

struct SchemeTable {
  std::unordered_map<std::string, Target> by_stored;      // generalized stored name -> target
  std::unordered_map<std::string, std::string> by_canonical;  // role|generalized canonical|suffix -> stored key
};

std::string reverse_key(TensorRole role, const std::string& canonical_key, const std::string& suffix) {
  return std::to_string(static_cast<int>(role)) + "|" + canonical_key + "|" + suffix;
}

void add(SchemeTable& table, TensorRole role, const std::string& canonical, const std::string& stored,
         const std::string& suffix) {
  const std::string stored_key = generalize(stored, nullptr);
  const std::string canonical_key = generalize(canonical, nullptr);
  const bool fresh = table.by_stored.emplace(stored_key, Target{role, canonical_key, suffix}).second;
  if (!fresh) fail("naming table: stored name {} appears twice", stored);  // a bug in the tables above
  table.by_canonical.emplace(reverse_key(role, canonical_key, suffix), stored_key);
}

void add_row(SchemeTable& table, const Row& row, const char* stored, const std::string& canonical_prefix,
             const std::string& stored_prefix) {
  const std::string canonical = canonical_prefix + row.canonical;
  const std::string name = stored_prefix + stored;
  switch (row.kind) {
    case Kind::kTensor: add(table, TensorRole::kTensor, canonical, name, ""); break;
    case Kind::kLinear:
      for (const Suffix& s : kLinearSuffixes) add(table, s.role, canonical, name + "." + s.name, s.name);
      break;
    case Kind::kFusedGateUp: add(table, TensorRole::kFusedGateUp, canonical, name, ""); break;
    case Kind::kFusedDown: add(table, TensorRole::kFusedDown, canonical, name, ""); break;
  }
}

SchemeTable build_table(NamingScheme scheme) {
  SchemeTable table;
  for (const Row& row : kGlobalRows) add_row(table, row, column(row, scheme), "", "");
  for (const Row& row : kBlockRows) {
    if (const char* stored = column(row, scheme)) add_row(table, row, stored, kLayerPrefix.canonical, layer_prefix(scheme));
    if (row.kind == Kind::kTensor || row.kind == Kind::kLinear) add_row(table, row, row.canonical, kMtpPrefix, kMtpPrefix);
  }
  for (const Row& row : kMtpRows) add_row(table, row, row.canonical, kMtpPrefix, kMtpPrefix);
  for (const Row& row : kDsparkRows) add_row(table, row, row.canonical, kMtpPrefix, kMtpPrefix);
  return table;
}

const SchemeTable& table_for(NamingScheme scheme) {
  static const std::array<SchemeTable, 3> tables = {build_table(NamingScheme::kDeepSeekNative),
                                                    build_table(NamingScheme::kTransformersSaved),
                                                    build_table(NamingScheme::kTransformers)};
  return tables[static_cast<size_t>(scheme)];
}

}  // namespace

std::string_view naming_scheme_name(NamingScheme scheme) {
  switch (scheme) {
    case NamingScheme::kDeepSeekNative: return "deepseek-native";
    case NamingScheme::kTransformersSaved: return "transformers-saved";
    case NamingScheme::kTransformers: return "transformers";
  }
  return "?";
}

std::optional<MappedName> to_canonical(NamingScheme scheme, const std::string& stored_name) {
  std::vector<std::string> indices;
  const std::string key = generalize(stored_name, &indices);
  const SchemeTable& table = table_for(scheme);
  auto it = table.by_stored.find(key);
  if (it == table.by_stored.end()) return std::nullopt;
  return MappedName{it->second.role, instantiate(it->second.canonical_key, indices), it->second.suffix};
}

std::string to_stored(NamingScheme scheme, TensorRole role, const std::string& canonical, const std::string& suffix) {
  std::vector<std::string> indices;
  const std::string key = generalize(canonical, &indices);
  const bool linear_role = role != TensorRole::kTensor && role != TensorRole::kFusedGateUp &&
                           role != TensorRole::kFusedDown;
  const SchemeTable& table = table_for(scheme);
  auto it = table.by_canonical.find(reverse_key(role, key, linear_role ? suffix : ""));
  if (it == table.by_canonical.end())
    fail("naming scheme {} has no name for {}{}", naming_scheme_name(scheme), canonical,
         linear_role ? "." + suffix : "");
  return instantiate(it->second, indices);
}

std::string stored_module_name(NamingScheme scheme, const std::string& canonical_module) {
  const std::string weight = to_stored(scheme, TensorRole::kLinearWeight, canonical_module, "weight");
  return weight.substr(0, weight.size() - std::string_view(".weight").size());
}

}  // namespace fp4serve
