#include "checkpoint/checkpoint_writer.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "checkpoint/model_config_json.h"
#include "checkpoint/naming_scheme.h"
#include "checkpoint/quant_config.h"
#include "formats/number_formats.h"
#include "formats/weight_dequantization.h"
#include "formats/weight_quantization.h"
#include "io/safetensors.h"

namespace fp4serve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr float kNvfp4Normalizer = 6.0f * 448.0f;  // ModelOpt: scale = amax / (E2M1 max * E4M3 max)

NamingScheme scheme_of(OutputLayout layout) {
  switch (layout) {
    case OutputLayout::kNvfp4: return NamingScheme::kTransformers;
    case OutputLayout::kTransformersSaved: return NamingScheme::kTransformersSaved;
    default: return NamingScheme::kDeepSeekNative;
  }
}

bool is_mtp(const std::string& name) { return name.rfind("mtp.", 0) == 0; }

// ModelOpt's exclude list for each scope, in the HF names the export uses.
std::vector<std::string> nvfp4_excludes(Nvfp4Scope scope) {
  if (scope == Nvfp4Scope::kExperts)
    return {"lm_head", "model.layers.*.self_attn*", "model.layers.*.mlp.gate", "model.layers.*.mlp.shared_experts*",
            "mtp.*"};
  return {"lm_head", "model.layers.*.self_attn.o_a_proj", "model.layers.*.mlp.gate", "mtp.*"};
}

TensorView float_tensor(const std::vector<float>& values, DType dtype, std::vector<int64_t> shape,
                        const std::string& name) {
  TensorView t = make_owned_tensor(dtype, std::move(shape), name);
  if (dtype == DType::F32) {
    std::memcpy(mutable_data(t), values.data(), values.size() * sizeof(float));
  } else {
    auto* out = reinterpret_cast<uint16_t*>(mutable_data(t));
    for (size_t i = 0; i < values.size(); ++i) out[i] = encode_bf16(values[i]);
  }
  return t;
}

TensorView scalar_f32(float value, const std::string& name) {
  TensorView t = make_owned_tensor(DType::F32, {}, name);
  std::memcpy(mutable_data(t), &value, sizeof(value));
  return t;
}

double relative_rms(const LinearWeight& lw, const std::vector<float>& master) {
  const std::vector<float> back = dequantize_to_f32(lw);
  double diff = 0, ref = 0;
  for (size_t i = 0; i < master.size(); ++i) {
    const double d = double(back[i]) - double(master[i]);
    diff += d * d;
    ref += double(master[i]) * double(master[i]);
  }
  return ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff);
}

// A linear's stored tensors in `encoding` with no data (holes for a sparse checkpoint);
// the shapes and dtypes are the ones quantize_weight produces.
LinearWeight placeholder_linear(const ExpectedLinear& l, WeightEncoding encoding) {
  const int64_t n = l.out_features, k = l.in_features;
  LinearWeight lw;
  lw.encoding = encoding;
  lw.out_features = n;
  lw.in_features = k;
  lw.name = l.name;
  auto view = [](DType dtype, std::vector<int64_t> shape) {
    TensorView t;
    t.dtype = dtype;
    t.nbytes = static_cast<size_t>(element_count(shape)) * dtype_size(dtype);
    t.shape = std::move(shape);
    return t;
  };
  switch (encoding) {
    case WeightEncoding::kFP8Block:
      lw.weight = view(DType::F8_E4M3, {n, k});
      lw.scale = view(DType::F8_E8M0, {(n + 127) / 128, (k + 127) / 128});
      break;
    case WeightEncoding::kMXFP4:
      lw.weight = view(DType::I8, {n, k / 2});
      lw.scale = view(DType::F8_E8M0, {n, k / 32});
      break;
    case WeightEncoding::kNVFP4:
      lw.weight = view(DType::U8, {n, k / 2});
      lw.scale = view(DType::F8_E4M3, {n, k / 16});
      break;
    case WeightEncoding::kF16: lw.weight = view(DType::F16, {n, k}); break;
    case WeightEncoding::kF32: lw.weight = view(DType::F32, {n, k}); break;
    case WeightEncoding::kBF16: lw.weight = view(DType::BF16, {n, k}); break;
  }
  return lw;
}

constexpr uint64_t kSparseTensorThreshold = uint64_t{1} << 20;

// Collects tensors into shards of about `shard_bytes`, then names them
// model-0000i-of-0000n.safetensors and writes the index (one shard: model.safetensors).
class ShardWriter {
 public:
  ShardWriter(fs::path dir, uint64_t shard_bytes, bool sparse)
      : dir_(std::move(dir)), shard_bytes_(shard_bytes), sparse_(sparse) {}

  void add(const std::string& name, TensorView tensor) {
    pending_bytes_ += tensor.nbytes;
    total_bytes_ += tensor.nbytes;
    pending_.push_back(NamedTensor{name, std::move(tensor)});
    if (pending_bytes_ >= shard_bytes_) flush();
  }

  size_t finish() {
    flush();
    const size_t n = shard_names_.size();
    std::map<std::string, std::string> final_names;
    for (size_t i = 0; i < n; ++i) {
      const std::string final_name =
          n == 1 ? "model.safetensors" : fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, n);
      fs::rename(dir_ / shard_names_[i], dir_ / final_name);
      final_names[shard_names_[i]] = final_name;
    }
    if (n > 1) {
      json weight_map = json::object();
      for (const auto& [tensor, shard] : weight_map_) weight_map[tensor] = final_names.at(shard);
      const json index = {{"metadata", {{"total_size", total_bytes_}}}, {"weight_map", weight_map}};
      std::ofstream(dir_ / "model.safetensors.index.json") << index.dump(2) << "\n";
    }
    return n;
  }

  uint64_t total_bytes() const { return total_bytes_; }

 private:
  void flush() {
    if (pending_.empty()) return;
    const std::string name = fmt::format("shard-{:05d}.partial.safetensors", shard_names_.size() + 1);
    write_safetensors((dir_ / name).string(), pending_, {{"format", "pt"}},
                      sparse_ ? MissingData::kHole : MissingData::kError);
    for (const auto& t : pending_) weight_map_[t.name] = name;
    shard_names_.push_back(name);
    pending_.clear();
    pending_bytes_ = 0;
  }

  fs::path dir_;
  uint64_t shard_bytes_;
  bool sparse_;
  std::vector<NamedTensor> pending_;
  uint64_t pending_bytes_ = 0;
  uint64_t total_bytes_ = 0;
  std::vector<std::string> shard_names_;
  std::map<std::string, std::string> weight_map_;
};

void write_json(const fs::path& path, const json& value) {
  std::ofstream out(path);
  out << value.dump(2) << "\n";
  if (!out) fail("{}: cannot write", path.string());
}

// The partner of a gate/up linear ("...w1" <-> "...w3"), or "" for any other linear.
std::string gate_up_partner(const std::string& name) {
  if (name.size() < 3) return {};
  const std::string tail = name.substr(name.size() - 3);
  if (tail == ".w1") return name.substr(0, name.size() - 3) + ".w3";
  if (tail == ".w3") return name.substr(0, name.size() - 3) + ".w1";
  return {};
}

}  // namespace

bool parse_output_layout(std::string_view name, OutputLayout* out) {
  for (OutputLayout layout :
       {OutputLayout::kNative, OutputLayout::kNvfp4, OutputLayout::kTransformersSaved, OutputLayout::kBF16}) {
    if (output_layout_name(layout) == name) {
      *out = layout;
      return true;
    }
  }
  return false;
}

std::string_view output_layout_name(OutputLayout layout) {
  switch (layout) {
    case OutputLayout::kNative: return "native";
    case OutputLayout::kNvfp4: return "nvfp4";
    case OutputLayout::kTransformersSaved: return "transformers-saved";
    case OutputLayout::kBF16: return "bf16";
  }
  return "?";
}

DType layout_tensor_dtype(OutputLayout layout, const ExpectedTensor& t) {
  if (t.kind == TensorKind::kIndex) return DType::I64;
  if (layout == OutputLayout::kTransformersSaved) return DType::BF16;  // save_pretrained writes the model dtype
  return t.native_dtype == NativeDType::kF32 ? DType::F32 : DType::BF16;
}

WeightEncoding layout_encoding(const WriterOptions& options, const ExpectedLinear& linear) {
  switch (options.layout) {
    case OutputLayout::kNative:
      switch (linear.group) {
        case LinearGroup::kAttention:
        case LinearGroup::kSharedExpert:
        case LinearGroup::kMtpProjection: return WeightEncoding::kFP8Block;
        case LinearGroup::kRoutedExpert: return WeightEncoding::kMXFP4;
        default: return WeightEncoding::kBF16;
      }
    case OutputLayout::kNvfp4: {
      // NVIDIA's NVFP4 exports of the DSpark releases leave the draft as DeepSeek shipped it (FP8 block,
      // MXFP4 experts); a classic MTP block is excluded ("mtp.*") and stays in the model dtype.
      if (linear.in_dspark_draft) return layout_encoding(WriterOptions{OutputLayout::kNative, {}, {}}, linear);
      if (is_mtp(linear.name)) return WeightEncoding::kBF16;
      if (linear.group == LinearGroup::kRoutedExpert) return WeightEncoding::kNVFP4;
      if (options.nvfp4_scope == Nvfp4Scope::kExperts) return WeightEncoding::kBF16;
      const std::string wo_a = ".attn.wo_a";
      const bool is_wo_a = linear.name.size() >= wo_a.size() &&
                           linear.name.compare(linear.name.size() - wo_a.size(), wo_a.size(), wo_a) == 0;
      if (linear.group == LinearGroup::kRouter || linear.group == LinearGroup::kHead || is_wo_a)
        return WeightEncoding::kBF16;
      return WeightEncoding::kNVFP4;
    }
    default: return WeightEncoding::kBF16;
  }
}

WriteReport write_checkpoint(const std::string& dir_name, const ModelConfig& config, MasterSource& masters,
                             const WriterOptions& options) {
  const fs::path dir(dir_name);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("{}: cannot create directory: {}", dir_name, ec.message());
  validate_model_config(config, dir_name);
  const NamingScheme scheme = scheme_of(options.layout);
  const ExpectedTensors expected = expected_tensors(config);
  std::map<std::string, const ExpectedLinear*> by_name;
  for (const auto& l : expected.linears) by_name[l.name] = &l;

  WriteReport report;
  ShardWriter shards(dir, options.shard_bytes, options.sparse);

  auto emit_linear = [&](const LinearWeight& lw) {
    if (lw.encoding == WeightEncoding::kNVFP4) {
      shards.add(to_stored(scheme, TensorRole::kLinearWeight, lw.name, "weight"), lw.weight);
      shards.add(to_stored(scheme, TensorRole::kBlockScale, lw.name, "weight_scale"), lw.scale);
      shards.add(to_stored(scheme, TensorRole::kGlobalScale, lw.name, "weight_scale_2"),
                 scalar_f32(lw.global_scale, lw.name));
      if (lw.input_scale > 0)
        shards.add(to_stored(scheme, TensorRole::kInputScale, lw.name, "input_scale"), scalar_f32(lw.input_scale, lw.name));
      return;
    }
    shards.add(to_stored(scheme, TensorRole::kLinearWeight, lw.name, "weight"), lw.weight);
    if (lw.scale.nbytes > 0) shards.add(to_stored(scheme, TensorRole::kBlockScale, lw.name, "scale"), lw.scale);
  };

  // ModelOpt exports carry input scales on every NVFP4 linear or on none: keep the
  // calibration only when the masters know it for all of them.
  bool input_scales = true;
  for (const ExpectedLinear& l : expected.linears)
    if (layout_encoding(options, l) == WeightEncoding::kNVFP4 && !masters.input_amax(l)) input_scales = false;

  std::map<std::string, bool> done;
  for (const ExpectedLinear& l : expected.linears) {
    if (done[l.name]) continue;
    const WeightEncoding encoding = layout_encoding(options, l);
    std::vector<const ExpectedLinear*> group = {&l};
    const std::string partner = gate_up_partner(l.name);
    if (encoding == WeightEncoding::kNVFP4 && !partner.empty() && layout_encoding(options, *by_name.at(partner)) ==
                                                                      WeightEncoding::kNVFP4)
      group.push_back(by_name.at(partner));  // w1/w3 share ModelOpt's fused amax
    if (options.sparse) {
      for (const ExpectedLinear* member : group) {
        LinearWeight lw = placeholder_linear(*member, encoding);
        if (input_scales && encoding == WeightEncoding::kNVFP4) lw.input_scale = *masters.input_amax(*member) / kNvfp4Normalizer;
        emit_linear(lw);
        done[member->name] = true;
      }
      continue;
    }
    std::vector<std::vector<float>> values;
    float amax = 0, input_amax = 0;
    for (const ExpectedLinear* member : group) {
      values.push_back(masters.linear(*member));
      amax = std::max(amax, absolute_max(values.back(), member->name));
      if (input_scales && encoding == WeightEncoding::kNVFP4) input_amax = std::max(input_amax, *masters.input_amax(*member));
    }
    QuantizeOptions q;
    if (encoding == WeightEncoding::kNVFP4) {
      q.nvfp4.global_amax = amax;
      if (input_scales) q.nvfp4.input_scale = input_amax / kNvfp4Normalizer;
    }
    for (size_t i = 0; i < group.size(); ++i) {
      const ExpectedLinear& member = *group[i];
      LinearWeight lw = quantize_weight(values[i], member.out_features, member.in_features, encoding, member.name, q);
      report.modules.push_back(ModuleError{member.name, encoding, relative_rms(lw, values[i])});
      emit_linear(lw);
      done[member.name] = true;
    }
  }

  for (const ExpectedTensor& t : expected.tensors) {
    const std::string stored = to_stored(scheme, TensorRole::kTensor, t.name);
    const DType dtype = layout_tensor_dtype(options.layout, t);
    const uint64_t bytes = static_cast<uint64_t>(element_count(t.shape)) * dtype_size(t.kind == TensorKind::kIndex ? DType::I64 : dtype);
    if (options.sparse && bytes > kSparseTensorThreshold) {
      TensorView hole;
      hole.dtype = t.kind == TensorKind::kIndex ? DType::I64 : dtype;
      hole.shape = t.shape;
      hole.nbytes = bytes;
      shards.add(stored, std::move(hole));
      continue;
    }
    if (t.kind == TensorKind::kIndex) {
      const std::vector<int64_t> values = masters.index_tensor(t);
      TensorView out = make_owned_tensor(DType::I64, t.shape, t.name);
      std::memcpy(mutable_data(out), values.data(), values.size() * sizeof(int64_t));
      shards.add(stored, std::move(out));
    } else {
      shards.add(stored, float_tensor(masters.tensor(t), dtype, t.shape, t.name));
    }
  }
  report.shards = shards.finish();
  report.bytes = shards.total_bytes();

  switch (options.layout) {
    case OutputLayout::kNative: {
      json c = deepseek_style_config(config);
      c["quantization_config"] = deepseek_fp8_quantization_config();
      c["expert_dtype"] = "fp4";
      write_json(dir / "config.json", c);
      break;
    }
    case OutputLayout::kBF16: write_json(dir / "config.json", deepseek_style_config(config)); break;
    case OutputLayout::kTransformersSaved: write_json(dir / "config.json", transformers_style_config(config)); break;
    case OutputLayout::kNvfp4: {
      const std::string algo = input_scales ? "NVFP4" : "W4A16_NVFP4";
      if (!input_scales)
        report.notes.push_back("activation scales are not known for every NVFP4 linear: written as quant_algo "
                               "W4A16_NVFP4, without input_scale");
      const auto excludes = nvfp4_excludes(options.nvfp4_scope);
      json c = transformers_style_config(config);
      c["quantization_config"] = modelopt_quantization_config(algo, excludes);
      write_json(dir / "config.json", c);
      write_json(dir / "hf_quant_config.json", modelopt_hf_quant_config(algo, excludes));
      break;
    }
  }
  return report;
}

}  // namespace fp4serve
