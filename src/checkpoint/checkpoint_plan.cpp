#include "checkpoint/checkpoint_plan.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>
#include <set>

#include "base/error.h"
#include "checkpoint/expected_tensors.h"
#include "checkpoint/linear_encoding.h"
#include "formats/linear_weight.h"
#include "io/safetensors.h"

namespace fp4serve {
namespace {

constexpr size_t kListLimit = 20;

std::string bullet_list(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < kListLimit; ++i) out += "\n  " + items[i];
  if (items.size() > kListLimit) out += fmt::format("\n  ... and {} more", items.size() - kListLimit);
  return out;
}

struct FusedExperts {
  const TensorView* gate_up = nullptr;  // [E, 2I, D]
  const TensorView* down = nullptr;     // [E, D, I]
};

// Stored tensors grouped by canonical target.
struct Grouped {
  std::map<std::string, StoredLinear> linears;
  std::map<std::string, const TensorView*> tensors;
  std::map<std::string, FusedExperts> fused;
  std::map<std::string, std::string> stored_names;
};

std::string strip_suffix(const std::string& name, const std::string& suffix) {
  return name.substr(0, name.size() - suffix.size() - 1);
}

Grouped group_tensors(const TensorSource& source, NamingScheme scheme, const std::string& label) {
  Grouped g;
  std::vector<std::string> unknown;
  for (const std::string& name : source.tensor_names()) {
    auto mapped = to_canonical(scheme, name);
    if (!mapped) {
      unknown.push_back(name);
      continue;
    }
    const TensorView* view = &source.tensor(name);
    auto claim = [&](const TensorView*& slot, const std::string& what) {
      if (slot != nullptr) fail("{}: {} and {} both map to {}", label, slot->origin, view->origin, what);
      slot = view;
    };
    const std::string& canonical = mapped->canonical;
    switch (mapped->role) {
      case TensorRole::kTensor:
        claim(g.tensors[canonical], canonical);
        g.stored_names[canonical] = name;
        break;
      case TensorRole::kLinearWeight:
      case TensorRole::kBlockScale:
      case TensorRole::kGlobalScale:
      case TensorRole::kInputScale: {
        StoredLinear& linear = g.linears[canonical];
        linear.module = strip_suffix(name, mapped->suffix);
        g.stored_names[canonical] = linear.module;
        const std::string what = canonical + " (" + mapped->suffix + ")";
        if (mapped->role == TensorRole::kLinearWeight) {
          claim(linear.weight, what);
        } else if (mapped->role == TensorRole::kBlockScale) {
          claim(linear.block_scale, canonical + " (block scale)");
          linear.block_scale_suffix = mapped->suffix;
        } else if (mapped->role == TensorRole::kGlobalScale) {
          claim(linear.global_scale, what);
        } else {
          claim(linear.input_scale, what);
        }
        break;
      }
      case TensorRole::kFusedGateUp: claim(g.fused[canonical].gate_up, canonical + " gate_up_proj"); break;
      case TensorRole::kFusedDown: claim(g.fused[canonical].down, canonical + " down_proj"); break;
    }
  }
  if (!unknown.empty()) {
    std::string hint;
    for (NamingScheme other : kAllNamingSchemes) {
      if (other == scheme) continue;
      size_t known = 0;
      for (const auto& name : unknown) known += to_canonical(other, name).has_value();
      if (known > 0)
        hint += fmt::format(" ({} of them are {} names: the files mix naming schemes)", known, naming_scheme_name(other));
    }
    fail("{}: {} unknown tensor(s) (naming scheme {}){}:{}", label, unknown.size(), naming_scheme_name(scheme), hint,
         bullet_list(unknown));
  }
  return g;
}

bool is_float_dtype(DType d) { return d == DType::F32 || d == DType::BF16 || d == DType::F16; }

WeightEncoding float_encoding(DType d) {
  return d == DType::BF16 ? WeightEncoding::kBF16 : d == DType::F16 ? WeightEncoding::kF16 : WeightEncoding::kF32;
}

// A zero-copy [rows, cols] window of a fused [E, ...] tensor.
LinearWeight fused_view(const TensorView& t, int64_t first_element, int64_t rows, int64_t cols,
                        const std::string& canonical, const std::string& where) {
  const size_t element = dtype_size(t.dtype);
  LinearWeight lw;
  lw.encoding = float_encoding(t.dtype);
  lw.out_features = rows;
  lw.in_features = cols;
  lw.name = canonical;
  lw.weight = t;
  lw.weight.shape = {rows, cols};
  lw.weight.data = t.data + static_cast<size_t>(first_element) * element;
  lw.weight.nbytes = static_cast<size_t>(rows * cols) * element;
  lw.weight.origin = t.origin + where;
  return lw;
}

// Splits transformers' fused experts into per-expert linears (views of the stored bytes).
void split_fused(const std::string& prefix, const FusedExperts& f, const ModelConfig& c,
                 std::map<std::string, LinearWeight>& out, std::map<std::string, std::string>& stored_names) {
  const int64_t E = c.n_routed_experts, I = c.moe_intermediate_size, D = c.hidden_size;
  auto check = [&](const TensorView& t, std::vector<int64_t> shape, const char* formula) {
    if (!is_float_dtype(t.dtype))
      fail("{}: fused experts must be unquantized (F32/BF16/F16), got {}", t.origin, dtype_name(t.dtype));
    if (t.shape != shape)
      fail("{}: shape {}; expected {} = {} for {}", t.origin, shape_string(t.shape), shape_string(shape), formula,
           prefix);
  };
  if (f.gate_up != nullptr) {
    check(*f.gate_up, {E, 2 * I, D}, "[n_routed_experts, 2 * moe_intermediate_size, hidden_size]");
    for (int64_t e = 0; e < E; ++e) {
      const std::string w1 = fmt::format("{}.{}.w1", prefix, e), w3 = fmt::format("{}.{}.w3", prefix, e);
      out[w1] = fused_view(*f.gate_up, e * 2 * I * D, I, D, w1, fmt::format("[{}] rows 0..{} (gate)", e, I - 1));
      out[w3] = fused_view(*f.gate_up, (e * 2 * I + I) * D, I, D, w3,
                           fmt::format("[{}] rows {}..{} (up)", e, I, 2 * I - 1));
      stored_names[w1] = f.gate_up->origin + fmt::format("[{}] gate", e);
      stored_names[w3] = f.gate_up->origin + fmt::format("[{}] up", e);
    }
  }
  if (f.down != nullptr) {
    check(*f.down, {E, D, I}, "[n_routed_experts, hidden_size, moe_intermediate_size]");
    for (int64_t e = 0; e < E; ++e) {
      const std::string w2 = fmt::format("{}.{}.w2", prefix, e);
      out[w2] = fused_view(*f.down, e * D * I, D, I, w2, fmt::format("[{}]", e));
      stored_names[w2] = f.down->origin + fmt::format("[{}]", e);
    }
  }
}

void check_tensor(const TensorView& t, const ExpectedTensor& e) {
  if (e.kind == TensorKind::kFloat && !is_float_dtype(t.dtype))
    fail("{}: dtype {}; {} must be F32, BF16 or F16", t.origin, dtype_name(t.dtype), e.name);
  if (e.kind == TensorKind::kIndex && t.dtype != DType::I64 && t.dtype != DType::I32)
    fail("{}: dtype {}; {} must be I64 or I32", t.origin, dtype_name(t.dtype), e.name);
  if (t.shape != e.shape)
    fail("{}: shape {}; expected {} = {} for {}", t.origin, shape_string(t.shape), shape_string(e.shape),
         e.shape_formula, e.name);
}

bool has_mtp_tensors(const Grouped& g) {
  auto starts_mtp = [](const std::string& name) { return name.rfind("mtp.", 0) == 0; };
  for (const auto& [name, _] : g.linears)
    if (starts_mtp(name)) return true;
  for (const auto& [name, _] : g.tensors)
    if (starts_mtp(name)) return true;
  return false;
}

// Warnings about each expert's (and the shared expert's) w1/w3 NVFP4 global scales.
void warn_gate_up_scale_mismatch(const Checkpoint& ck, std::vector<std::string>& warnings) {
  std::vector<std::string> examples;
  size_t count = 0;
  for (const auto& [name, w1] : ck.linears) {
    if (w1.encoding != WeightEncoding::kNVFP4 || name.size() < 3 || name.compare(name.size() - 3, 3, ".w1") != 0)
      continue;
    auto w3 = ck.linears.find(name.substr(0, name.size() - 3) + ".w3");
    if (w3 == ck.linears.end() || w3->second.encoding != WeightEncoding::kNVFP4) continue;
    if (w1.global_scale == w3->second.global_scale) continue;
    ++count;
    if (examples.size() < 3)
      examples.push_back(fmt::format("{}: w1 {:.9g} vs w3 {:.9g}", name.substr(0, name.size() - 3), w1.global_scale,
                                     w3->second.global_scale));
  }
  if (count > 0)
    warnings.push_back(fmt::format("{} gate/up (w1/w3) pair(s) have different NVFP4 global scales (weight_scale_2), "
                                   "e.g. {}; each half is kept with its own scale (exact)",
                                   count, fmt::join(examples, "; ")));
}

// Compares the quantization config's NVFP4 claims with the detected encodings,
// grouped by name pattern so a 61-layer model gives one line per kind of module.
void warn_quant_config_mismatch(const Checkpoint& ck, const QuantConfig& quant,
                                const std::set<std::string>& routed_experts, std::vector<std::string>& warnings) {
  std::map<std::string, size_t> said_nvfp4_not_stored, stored_nvfp4_not_said;
  for (const auto& [name, lw] : ck.linears) {
    const std::string& module = ck.stored_names.at(name);
    auto claim = quant.claims_nvfp4(module, routed_experts.count(name) != 0);
    if (!claim) continue;
    const bool is_nvfp4 = lw.encoding == WeightEncoding::kNVFP4;
    if (*claim == is_nvfp4) continue;
    std::string pattern;
    for (char ch : module) {
      if (ch >= '0' && ch <= '9') {
        if (pattern.empty() || pattern.back() != '*') pattern += '*';
      } else {
        pattern += ch;
      }
    }
    ++(*claim ? said_nvfp4_not_stored : stored_nvfp4_not_said)[pattern];
  }
  for (const auto& [pattern, n] : said_nvfp4_not_stored)
    warnings.push_back(fmt::format("quantization config says NVFP4 for {} ({} module(s)) but they are stored "
                                   "otherwise; the stored encoding is used",
                                   pattern, n));
  for (const auto& [pattern, n] : stored_nvfp4_not_said)
    warnings.push_back(fmt::format("{} ({} module(s)) are stored NVFP4 although the quantization config does "
                                   "not make them NVFP4; the stored encoding is used",
                                   pattern, n));
}

}  // namespace

NamingScheme detect_naming_scheme(const std::vector<std::string>& names, const std::string& label) {
  NamingScheme best = NamingScheme::kDeepSeekNative;
  size_t best_count = 0;
  for (NamingScheme scheme : kAllNamingSchemes) {
    size_t count = 0;
    for (const auto& name : names) count += to_canonical(scheme, name).has_value();
    if (count > best_count) {
      best = scheme;
      best_count = count;
    }
  }
  if (best_count == 0) {
    std::vector<std::string> first(names.begin(), names.begin() + std::min<size_t>(names.size(), 5));
    fail("{}: no tensor name belongs to a known DeepSeek-V4 naming scheme (deepseek-native, transformers-saved, "
         "transformers); first names:{}",
         label, bullet_list(first));
  }
  return best;
}

Checkpoint plan_checkpoint(ModelConfig config, const QuantConfig& quant, std::shared_ptr<const TensorSource> source,
                           const std::string& label) {
  Checkpoint ck;
  const NamingScheme scheme = detect_naming_scheme(source->tensor_names(), label);
  Grouped g = group_tensors(*source, scheme, label);

  if (config.num_draft_blocks() > 0 && !has_mtp_tensors(g)) {
    if (config.draft.kind == DraftKind::kDSpark) {
      ck.warnings.push_back(fmt::format("config has a DSpark draft of {} stage(s) (dspark_* keys) but the checkpoint "
                                        "holds no mtp.* tensors; the draft is disabled",
                                        config.draft.num_stages));
    } else {
      ck.warnings.push_back(fmt::format("config has {} MTP layer(s) but the checkpoint holds no mtp.* tensors; MTP "
                                        "is disabled",
                                        config.num_mtp_layers));
    }
    config.compress_ratios.resize(static_cast<size_t>(config.num_layers));
    config.num_mtp_layers = 0;
    config.draft = DraftConfig{};
  }
  if (config.draft.kind == DraftKind::kDSpark && config.draft.inferred_parameters) {
    const DraftConfig& d = config.draft;
    ck.warnings.push_back(fmt::format(
        "the index holds a DSpark draft (mtp.0.main_proj) but config.json has no dspark_* keys; assumed "
        "dspark_block_size {} (DeepSeek's released value), dspark_target_layer_ids [{}] (the last layers, as many as "
        "main_proj's input holds), dspark_markov_rank {} (from markov_w1), dspark_noise_token_id {}",
        d.block_size, fmt::join(d.target_layer_ids, ", "), d.markov_rank,
        d.noise_token_id >= 0 ? std::to_string(d.noise_token_id) : std::string("unknown (not DeepSeek-V4's vocabulary)")));
  }
  const ExpectedTensors expected = expected_tensors(config);

  std::map<std::string, LinearWeight> from_fused;
  for (const auto& [prefix, fused] : g.fused) split_fused(prefix, fused, config, from_fused, g.stored_names);

  std::vector<std::string> missing;
  std::set<std::string> consumed_linears, consumed_tensors, routed_experts;
  for (const ExpectedLinear& e : expected.linears) {
    if (e.group == LinearGroup::kRoutedExpert) routed_experts.insert(e.name);
    if (auto it = g.linears.find(e.name); it != g.linears.end()) {
      ck.linears[e.name] = detect_linear(it->second, e.out_features, e.in_features, e.name, e.shape_formula);
      validate_linear_weight(ck.linears[e.name]);  // the formats contract, from headers
      consumed_linears.insert(e.name);
    } else if (auto f = from_fused.find(e.name); f != from_fused.end()) {
      ck.linears[e.name] = f->second;
      consumed_linears.insert(e.name);
    } else {
      missing.push_back(fmt::format("{} (linear module; expected {})", e.name,
                                    to_stored(scheme, TensorRole::kLinearWeight, e.name, "weight")));
    }
    if (ck.linears.count(e.name)) ck.stored_names[e.name] = g.stored_names.at(e.name);
  }
  for (const ExpectedTensor& e : expected.tensors) {
    auto it = g.tensors.find(e.name);
    if (it == g.tensors.end()) {
      missing.push_back(fmt::format("{} (expected {})", e.name, to_stored(scheme, TensorRole::kTensor, e.name)));
      continue;
    }
    check_tensor(*it->second, e);
    ck.tensors[e.name] = *it->second;
    ck.stored_names[e.name] = g.stored_names.at(e.name);
    consumed_tensors.insert(e.name);
  }
  if (!missing.empty())
    fail("{}: {} tensor(s) missing (naming scheme {}):{}", label, missing.size(), naming_scheme_name(scheme),
         bullet_list(missing));

  std::vector<std::string> unexpected;
  for (const auto& [name, linear] : g.linears)
    if (!consumed_linears.count(name)) unexpected.push_back(fmt::format("{} ({})", linear.module, name));
  for (const auto& [name, view] : g.tensors)
    if (!consumed_tensors.count(name)) unexpected.push_back(fmt::format("{} ({})", view->origin, name));
  for (const auto& [name, lw] : from_fused)
    if (!consumed_linears.count(name)) unexpected.push_back(fmt::format("{} ({})", lw.weight.origin, name));
  if (!unexpected.empty())
    fail("{}: {} tensor(s) that this config has no place for (num_hidden_layers {}, {} MTP, {} DSpark stages, {} "
         "experts, {} hash layers; compressors only on layers with ratio > 0, indexers on ratio 4, tid2eid only on "
         "hash layers, gate bias only on the others):{}",
         label, unexpected.size(), config.num_layers, config.num_mtp_layers,
         config.draft.kind == DraftKind::kDSpark ? config.draft.num_stages : 0, config.n_routed_experts,
         config.num_hash_layers, bullet_list(unexpected));

  ck.config = std::move(config);
  ck.naming_scheme = std::string(naming_scheme_name(scheme));
  ck.quantization = quant.describe();
  bool any_nvfp4 = false;
  for (const auto& [name, lw] : ck.linears) any_nvfp4 = any_nvfp4 || lw.encoding == WeightEncoding::kNVFP4;
  ck.layout = any_nvfp4 ? "modelopt-nvfp4" : ck.naming_scheme;
  warn_gate_up_scale_mismatch(ck, ck.warnings);
  warn_quant_config_mismatch(ck, quant, routed_experts, ck.warnings);
  ck.source = std::move(source);
  return ck;
}

}  // namespace fp4serve
