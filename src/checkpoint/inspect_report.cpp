#include "checkpoint/inspect_report.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "checkpoint/naming_scheme.h"
#include "checkpoint/quantize_checkpoint.h"
#include "config/state_size.h"
#include "formats/weight_dequantization.h"

namespace fp4serve {
namespace {

using nlohmann::json;

const char* attention_label(AttentionKind kind) {
  switch (kind) {
    case AttentionKind::kSlidingWindow: return "SWA";
    case AttentionKind::kCompressedSparse: return "CSA";
    case AttentionKind::kHeavilyCompressed: return "HCA";
  }
  return "?";
}

// Main layers by number, draft blocks (MTP layers or DSpark stages) by their mtp.J prefix.
std::string layer_name(const ModelConfig& c, int64_t i) {
  return i < c.num_layers ? fmt::format("{}", i) : fmt::format("mtp.{}", i - c.num_layers);
}

std::string mib(uint64_t bytes) { return fmt::format("{:.2f} MiB", static_cast<double>(bytes) / (1 << 20)); }

struct Totals {
  size_t count = 0;
  uint64_t bytes = 0;
};

const char* draft_kind_name(DraftKind kind) {
  switch (kind) {
    case DraftKind::kNone: return "none";
    case DraftKind::kMtp: return "mtp";
    case DraftKind::kDSpark: return "dspark";
  }
  return "?";
}

// Stored tensors (weights, scales, norms, ...) under mtp.* and their bytes.
Totals draft_totals(const Checkpoint& ck) {
  Totals t;
  auto in_draft = [](const std::string& name) { return name.rfind("mtp.", 0) == 0; };
  for (const auto& [name, lw] : ck.linears) {
    if (!in_draft(name)) continue;
    t.count += 1 + (lw.scale.nbytes > 0) + (lw.encoding == WeightEncoding::kNVFP4) + (lw.input_scale > 0);
    t.bytes += lw.stored_bytes();
  }
  for (const auto& [name, tensor] : ck.tensors) {
    if (!in_draft(name)) continue;
    ++t.count;
    t.bytes += tensor.nbytes;
  }
  return t;
}

json draft_json(const Checkpoint& ck) {
  const DraftConfig& d = ck.config.draft;
  const Totals totals = draft_totals(ck);
  json j = {{"kind", draft_kind_name(d.kind)}, {"stages", ck.config.num_draft_blocks()}, {"tensors", totals.count},
            {"bytes", totals.bytes}};
  if (d.kind == DraftKind::kNone) return j;
  j["block_size"] = d.block_size;
  j["window"] = d.sliding_window;
  if (d.kind == DraftKind::kDSpark) {
    j["noise_token_id"] = d.noise_token_id;
    j["target_layer_ids"] = d.target_layer_ids;
    j["markov_rank"] = d.markov_rank;
    j["markov_head"] = d.has_markov_head;
    j["confidence_head"] = d.has_confidence_head;
    j["parameters_inferred"] = d.inferred_parameters;
  }
  return j;
}

std::string draft_text(const Checkpoint& ck) {
  const DraftConfig& d = ck.config.draft;
  const Totals totals = draft_totals(ck);
  switch (d.kind) {
    case DraftKind::kNone: return "draft        none\n";
    case DraftKind::kMtp:
      return fmt::format("draft        mtp: {} classic MTP block(s), 1 token per step; {} tensors, {}\n",
                         ck.config.num_mtp_layers, totals.count, mib(totals.bytes));
    case DraftKind::kDSpark: break;
  }
  return fmt::format(
      "draft        dspark: {} stages, block {} (noise token {}), taps layers [{}], window {}, Markov head rank {}{}, "
      "confidence head {}; {} tensors, {}{}\n",
      d.num_stages, d.block_size, d.noise_token_id >= 0 ? std::to_string(d.noise_token_id) : std::string("unknown"),
      fmt::join(d.target_layer_ids, ", "), d.sliding_window, d.markov_rank, d.has_markov_head ? "" : " (absent)",
      d.has_confidence_head ? "yes" : "no", totals.count, mib(totals.bytes),
      d.inferred_parameters ? " (parameters assumed: config.json has no dspark_* keys)" : "");
}

std::map<std::string, Totals> totals_per_encoding(const Checkpoint& ck, uint64_t* tensor_bytes) {
  std::map<std::string, Totals> totals;
  for (const auto& [name, lw] : ck.linears) {
    Totals& t = totals[std::string(encoding_name(lw.encoding))];
    ++t.count;
    t.bytes += lw.stored_bytes();
  }
  *tensor_bytes = 0;
  for (const auto& [name, t] : ck.tensors) *tensor_bytes += t.nbytes;
  return totals;
}

// "layers.3.ffn.experts.17.w1" -> "layers.3.ffn.experts.*.w1" (also stored names:
// "model.layers.3.mlp.experts.17.gate_proj"); other names unchanged.
std::string fold_expert(const std::string& name) {
  const std::string marker = ".experts.";
  const size_t at = name.find(marker);
  if (at == std::string::npos) return name;
  const size_t start = at + marker.size();
  const size_t end = name.find('.', start);
  return name.substr(0, start) + "*" + (end == std::string::npos ? "" : name.substr(end));
}

// Canonical names in model order: numeric components compare as numbers
// (layers.2 before layers.10), globals first, MTP last.
std::vector<std::string> natural_order(const std::map<std::string, LinearWeight>& linears) {
  auto key = [](const std::string& name) {
    std::vector<std::pair<int, std::string>> parts;
    parts.emplace_back(name.rfind("mtp.", 0) == 0 ? 2 : name.rfind("layers.", 0) == 0 ? 1 : 0, "");
    size_t start = 0;
    while (start <= name.size()) {
      const size_t dot = std::min(name.find('.', start), name.size());
      const std::string part = name.substr(start, dot - start);
      const bool numeric = !part.empty() && part.size() < 10 && part.find_first_not_of("0123456789") == std::string::npos;
      parts.emplace_back(numeric ? std::stoi(part) : -1, numeric ? "" : part);
      start = dot + 1;
    }
    return parts;
  };
  std::vector<std::pair<std::vector<std::pair<int, std::string>>, std::string>> keyed;
  for (const auto& [name, lw] : linears) keyed.emplace_back(key(name), name);
  std::sort(keyed.begin(), keyed.end());
  std::vector<std::string> out;
  for (auto& [k, name] : keyed) out.push_back(std::move(name));
  return out;
}

}  // namespace

json inspect_json(const Checkpoint& ck, const std::string& path) {
  const ModelConfig& c = ck.config;
  json j;
  j["path"] = path;
  j["layout"] = ck.layout;
  j["naming_scheme"] = ck.naming_scheme;
  j["quantization"] = ck.quantization;
  j["config"] = {{"hidden_size", c.hidden_size},       {"num_layers", c.num_layers},
                 {"num_mtp_layers", c.num_mtp_layers}, {"num_heads", c.num_heads},
                 {"head_dim", c.head_dim},             {"n_routed_experts", c.n_routed_experts},
                 {"experts_per_token", c.experts_per_token}, {"vocab_size", c.vocab_size}};
  j["draft"] = draft_json(ck);
  json layers = json::array();
  for (int64_t i = 0; i < c.num_layers + c.num_draft_blocks(); ++i) {
    layers.push_back({{"layer", layer_name(c, i)},
                      {"attention", attention_label(c.attention_kind(i))},
                      {"compress_ratio", c.compress_ratio(i)},
                      {"routing", c.is_hash_layer(i) && i < c.num_layers ? "hash" : "learned"}});
  }
  j["layers"] = layers;
  json modules = json::array();
  for (const auto& [name, lw] : ck.linears) {
    modules.push_back({{"name", name},
                       {"stored_name", ck.stored_names.at(name)},
                       {"encoding", std::string(encoding_name(lw.encoding))},
                       {"shape", {lw.out_features, lw.in_features}},
                       {"bytes", lw.stored_bytes()}});
    if (lw.encoding == WeightEncoding::kNVFP4) {
      modules.back()["global_scale"] = lw.global_scale;
      if (lw.input_scale > 0) modules.back()["input_scale"] = lw.input_scale;
    }
  }
  j["modules"] = modules;
  json tensors = json::array();
  for (const auto& [name, t] : ck.tensors) {
    tensors.push_back({{"name", name},
                       {"stored_name", ck.stored_names.at(name)},
                       {"dtype", std::string(dtype_name(t.dtype))},
                       {"shape", t.shape},
                       {"bytes", t.nbytes}});
  }
  j["tensors"] = tensors;
  uint64_t tensor_bytes = 0;
  json totals = json::object();
  uint64_t weight_bytes = 0;
  for (const auto& [encoding, t] : totals_per_encoding(ck, &tensor_bytes)) {
    totals[encoding] = {{"modules", t.count}, {"bytes", t.bytes}};
    weight_bytes += t.bytes;
  }
  j["totals"] = totals;
  const StateRate state = state_rate(c);
  j["memory"] = {{"linear_bytes", weight_bytes},
                 {"other_tensor_bytes", tensor_bytes},
                 {"weights_bytes", weight_bytes + tensor_bytes},
                 {"kv_cache_fixed_bytes_per_sequence", state.bytes_per_sequence},
                 {"kv_cache_bytes_per_token", state.bytes_per_token}};
  j["warnings"] = ck.warnings;
  return j;
}

std::string inspect_text(const Checkpoint& ck, const std::string& path) {
  const ModelConfig& c = ck.config;
  std::string out;
  out += fmt::format("checkpoint   {}\nlayout       {} (naming: {})\nquantization {}\n", path, ck.layout,
                     ck.naming_scheme, ck.quantization);
  out += fmt::format("model        hidden {}, {} layers + {} MTP, {} heads x {}, {} experts (top {}) + {} shared, "
                     "vocab {}\n",
                     c.hidden_size, c.num_layers, c.num_mtp_layers, c.num_heads, c.head_dim, c.n_routed_experts,
                     c.experts_per_token, c.n_shared_experts, c.vocab_size);
  out += draft_text(ck) + "\n";
  out += "layer schedule\n  layer   attention  ratio  routing\n";
  for (int64_t i = 0; i < c.num_layers + c.num_draft_blocks(); ++i) {
    out += fmt::format("  {:<7} {:<10} {:<6} {}\n", layer_name(c, i), attention_label(c.attention_kind(i)),
                       c.compress_ratio(i), c.is_hash_layer(i) && i < c.num_layers ? "hash" : "learned");
  }
  // Fold routed experts sharing encoding and shape into one row per layer and projection.
  struct Row {
    std::string stored;
    std::string encoding;
    int64_t out = 0, in = 0;
    uint64_t bytes = 0;
    size_t count = 0;
  };
  std::vector<std::pair<std::string, Row>> rows;
  std::map<std::string, size_t> row_of;
  for (const std::string& name : natural_order(ck.linears)) {
    const LinearWeight& lw = ck.linears.at(name);
    const std::string encoding(encoding_name(lw.encoding));
    const std::string key = fmt::format("{}|{}|{}x{}", fold_expert(name), encoding, lw.out_features, lw.in_features);
    auto it = row_of.find(key);
    if (it == row_of.end()) {
      row_of[key] = rows.size();
      rows.push_back({fold_expert(name), Row{fold_expert(ck.stored_names.at(name)), encoding, lw.out_features,
                                             lw.in_features, lw.stored_bytes(), 1}});
    } else {
      Row& r = rows[it->second].second;
      r.bytes += lw.stored_bytes();
      ++r.count;
    }
  }
  out += "\nmodules\n";
  out += fmt::format("  {:<44} {:<10} {:<14} {:>12}  {}\n", "module", "encoding", "shape [N, K]", "bytes", "stored as");
  for (const auto& [name, r] : rows) {
    const std::string label = r.count > 1 ? fmt::format("{} (x{})", name, r.count) : name;
    out += fmt::format("  {:<44} {:<10} {:<14} {:>12}  {}\n", label, r.encoding, fmt::format("[{}, {}]", r.out, r.in),
                       r.bytes, r.stored);
  }
  uint64_t tensor_bytes = 0;
  out += "\ntotals per encoding\n";
  uint64_t weight_bytes = 0;
  for (const auto& [encoding, t] : totals_per_encoding(ck, &tensor_bytes)) {
    out += fmt::format("  {:<10} {:>7} linears  {:>14}\n", encoding, t.count, mib(t.bytes));
    weight_bytes += t.bytes;
  }
  out += fmt::format("  {:<10} {:>7} tensors  {:>14}\n", "other", ck.tensors.size(), mib(tensor_bytes));
  const StateRate state = state_rate(c);
  out += fmt::format("\nestimated memory\n  weights   {}\n  KV cache  {} per sequence + {} per 1k tokens (float32)\n",
                     mib(weight_bytes + tensor_bytes), mib(state.bytes_per_sequence),
                     mib(static_cast<uint64_t>(state.bytes_per_token * 1000)));
  out += fmt::format("\nwarnings ({})\n", ck.warnings.size());
  for (const auto& w : ck.warnings) out += "  " + w + "\n";
  return out;
}

ResolvedName resolve_tensor_name(const Checkpoint& ck, const std::string& name) {
  if (ck.has_linear(name)) return {true, name};
  if (ck.has_tensor(name)) return {false, name};
  for (NamingScheme scheme : kAllNamingSchemes) {
    if (naming_scheme_name(scheme) != ck.naming_scheme) continue;
    for (const std::string& candidate : {name, name + ".weight"}) {
      auto mapped = to_canonical(scheme, candidate);
      if (!mapped) continue;
      if (mapped->role == TensorRole::kTensor && ck.has_tensor(mapped->canonical)) return {false, mapped->canonical};
      if (mapped->role == TensorRole::kLinearWeight && ck.has_linear(mapped->canonical))
        return {true, mapped->canonical};
    }
  }
  if (name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0 &&
      ck.has_linear(name.substr(0, name.size() - 7)))
    return {true, name.substr(0, name.size() - 7)};
  fail("no tensor or linear named '{}' in this checkpoint (give a canonical name such as layers.0.attn.wq_a, or the "
       "checkpoint's own name)",
       name);
}

TensorView dequantized_tensor(const Checkpoint& ck, const ResolvedName& name) {
  std::vector<float> values;
  std::vector<int64_t> shape;
  if (name.is_linear) {
    const LinearWeight& lw = ck.linear(name.canonical);
    values = dequantize_to_f32(lw);
    shape = {lw.out_features, lw.in_features};
  } else {
    const TensorView& t = ck.tensor(name.canonical);
    values = tensor_to_f32(t);
    shape = t.shape;
  }
  TensorView out = make_owned_tensor(DType::F32, shape, name.canonical);
  std::memcpy(mutable_data(out), values.data(), values.size() * sizeof(float));
  return out;
}

}  // namespace fp4serve
