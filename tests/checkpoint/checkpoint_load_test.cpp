// Loading every layout, checked against independent references: the in-memory
// parameters of a transformers model (checksums made by PyTorch on the GPU machine),
// PyTorch's own decode of our native and NVFP4 files, and the table decode of
// checkpoint_test_support.h.
#include "checkpoint/checkpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "checkpoint/inspect_report.h"
#include "checkpoint/naming_scheme.h"
#include "checkpoint/test_model.h"
#include "checkpoint_test_support.h"
#include "formats/weight_quantization.h"

namespace fp4serve {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using testing::checksum;
using testing::fixture_dir;
using testing::reference_decode;
using testing::reference_widen;
using testing::ScratchDir;
using testing::quiet;

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

TEST(LoadCheckpoint, TransformersSavedFixtureHoldsTheInMemoryParameters) {
  const Checkpoint ck = load_checkpoint(fixture_dir("transformers_saved_tiny"), quiet());
  EXPECT_EQ(ck.layout, "transformers-saved");
  EXPECT_EQ(ck.naming_scheme, "transformers-saved");
  EXPECT_EQ(ck.config.num_layers, 4);
  EXPECT_EQ(ck.config.num_mtp_layers, 0);  // transformers does not instantiate MTP
  EXPECT_EQ(ck.config.compress_ratios, (std::vector<int64_t>{0, 4, 8, 4}));
  EXPECT_EQ(ck.config.num_hash_layers, 2);
  EXPECT_EQ(ck.config.rope_head_dim, 16);
  EXPECT_EQ(ck.config.yarn.factor, 16.0);
  ASSERT_EQ(ck.warnings.size(), 1u);
  EXPECT_THAT(ck.warnings[0], HasSubstr("MTP is disabled"));

  // Every in-memory parameter, named as transformers names it in memory (self_attn.q_a_proj,
  // fused experts, ...), must equal what we loaded from save_pretrained's file under the
  // same canonical name.
  const json reference = read_json(fixture_dir("transformers_saved_tiny.reference.json"));
  std::set<std::string> covered;
  for (const auto& [name, info] : reference["in_memory"].items()) {
    SCOPED_TRACE(name);
    auto mapped = to_canonical(NamingScheme::kTransformers, name);
    ASSERT_TRUE(mapped.has_value());
    const uint64_t expected = info["checksum"].get<uint64_t>();
    const int64_t E = ck.config.n_routed_experts;
    switch (mapped->role) {
      case TensorRole::kTensor: {
        const auto values = reference_widen(ck.tensor(mapped->canonical));
        EXPECT_EQ(checksum(values.data(), values.size()), expected);
        covered.insert(mapped->canonical);
        break;
      }
      case TensorRole::kLinearWeight: {
        const auto values = reference_decode(ck.linear(mapped->canonical));
        EXPECT_EQ(checksum(values.data(), values.size()), expected);
        covered.insert(mapped->canonical);
        break;
      }
      case TensorRole::kFusedGateUp:
      case TensorRole::kFusedDown: {
        // [E, 2I, D] = per expert w1 rows then w3 rows; [E, D, I] = per expert w2.
        const bool gate_up = mapped->role == TensorRole::kFusedGateUp;
        uint64_t sum = 0, index = 0;
        for (int64_t e = 0; e < E; ++e) {
          for (const char* part : gate_up ? std::vector<const char*>{"w1", "w3"} : std::vector<const char*>{"w2"}) {
            const std::string linear = mapped->canonical + "." + std::to_string(e) + "." + part;
            const auto values = reference_decode(ck.linear(linear));
            sum += checksum(values.data(), values.size(), index);
            index += values.size();
            covered.insert(linear);
          }
        }
        EXPECT_EQ(sum, expected);
        break;
      }
      default: FAIL() << "unexpected role";
    }
  }
  EXPECT_EQ(covered.size(), ck.linears.size() + ck.tensors.size()) << "every loaded tensor is one the model had";
}

TEST(LoadCheckpoint, DequantIsBitExactAgainstPyTorchDecode) {
  const json torch = read_json(fixture_dir("torch_checksums.json"));
  for (const char* name : {"native_small", "nvfp4_small", "transformers_saved_tiny"}) {
    SCOPED_TRACE(name);
    const Checkpoint ck = load_checkpoint(fixture_dir(name), quiet());
    std::set<std::string> covered;
    for (const auto& [stored, expected] : torch[name].items()) {
      SCOPED_TRACE(stored);
      const ResolvedName resolved = resolve_tensor_name(ck, stored);
      const TensorView values = dequantized_tensor(ck, resolved);
      EXPECT_EQ(checksum(values.as<float>(), static_cast<size_t>(values.numel())), expected.get<uint64_t>());
      covered.insert(resolved.canonical);
    }
    // Every linear and every tensor was checked, except that the script skips stored names
    // ending in ".scale" (transformers' attn_hc.scale / ffn_hc.scale look like scale tensors).
    for (const auto& [canonical, lw] : ck.linears) EXPECT_TRUE(covered.count(canonical)) << canonical;
    for (const auto& [canonical, t] : ck.tensors) {
      const std::string& stored = ck.stored_names.at(canonical);
      const bool skipped_by_script = stored.size() > 6 && stored.compare(stored.size() - 6, 6, ".scale") == 0;
      EXPECT_TRUE(covered.count(canonical) || skipped_by_script) << canonical;
    }
  }
}

TEST(LoadCheckpoint, FixtureLayoutsAndEncodings) {
  const Checkpoint native = load_checkpoint(fixture_dir("native_small"), quiet());
  EXPECT_EQ(native.layout, "deepseek-native");
  EXPECT_EQ(native.linear("layers.0.attn.wq_a").encoding, WeightEncoding::kFP8Block);
  EXPECT_EQ(native.linear("layers.0.attn.wq_a").scale.dtype, DType::F8_E8M0);
  EXPECT_EQ(native.linear("layers.3.ffn.experts.2.w2").encoding, WeightEncoding::kMXFP4);
  EXPECT_EQ(native.linear("layers.1.attn.compressor.wkv").encoding, WeightEncoding::kBF16);
  EXPECT_EQ(native.tensor("layers.0.ffn.gate.tid2eid").dtype, DType::I64);
  EXPECT_EQ(native.tensor("layers.2.attn.compressor.ape").dtype, DType::F32);
  EXPECT_EQ(native.config.num_mtp_layers, 1);
  EXPECT_TRUE(native.has_linear("mtp.0.e_proj"));
  EXPECT_TRUE(native.warnings.empty());

  const Checkpoint nvfp4 = load_checkpoint(fixture_dir("nvfp4_small"), quiet());
  EXPECT_EQ(nvfp4.layout, "modelopt-nvfp4");
  EXPECT_EQ(nvfp4.naming_scheme, "transformers");
  const LinearWeight& q = nvfp4.linear("layers.1.attn.wq_a");
  EXPECT_EQ(q.encoding, WeightEncoding::kNVFP4);
  EXPECT_GT(q.global_scale, 0.0f);
  EXPECT_GT(q.input_scale, 0.0f);
  EXPECT_EQ(nvfp4.stored_names.at("layers.1.attn.wq_a"), "model.layers.1.self_attn.q_a_proj");
  EXPECT_EQ(nvfp4.linear("layers.1.attn.wo_a").encoding, WeightEncoding::kBF16);  // beside NVFP4 neighbours
  EXPECT_EQ(nvfp4.linear("layers.1.attn.compressor.wgate").encoding, WeightEncoding::kNVFP4);
  EXPECT_EQ(nvfp4.linear("layers.1.ffn.gate").encoding, WeightEncoding::kBF16);
  EXPECT_EQ(nvfp4.linear("mtp.0.e_proj").encoding, WeightEncoding::kBF16);
  // ModelOpt's fused amax: w1 and w3 of an expert share the global scale.
  EXPECT_EQ(nvfp4.linear("layers.2.ffn.experts.1.w1").global_scale,
            nvfp4.linear("layers.2.ffn.experts.1.w3").global_scale);
  EXPECT_TRUE(nvfp4.warnings.empty());
}

// Every layout make-test-model writes decodes exactly as the table decode says.
TEST(LoadCheckpoint, EveryLayoutDequantizesLikeTheTableDecode) {
  struct Case {
    OutputLayout layout;
    Nvfp4Scope scope;
    const char* expected_layout;
  };
  for (const Case& c : {Case{OutputLayout::kNative, Nvfp4Scope::kLinears, "deepseek-native"},
                        Case{OutputLayout::kNvfp4, Nvfp4Scope::kLinears, "modelopt-nvfp4"},
                        Case{OutputLayout::kNvfp4, Nvfp4Scope::kExperts, "modelopt-nvfp4"},
                        Case{OutputLayout::kTransformersSaved, Nvfp4Scope::kLinears, "transformers-saved"},
                        Case{OutputLayout::kBF16, Nvfp4Scope::kLinears, "deepseek-native"}}) {
    SCOPED_TRACE(std::string(output_layout_name(c.layout)));
    ScratchDir dir("model");
    TestModelOptions options;
    options.layout = c.layout;
    options.nvfp4_scope = c.scope;
    options.seed = 3;
    options.preset = "small";
    write_test_model(dir.str(), options);
    const Checkpoint ck = load_checkpoint(dir.str(), quiet());
    EXPECT_EQ(ck.layout, c.expected_layout);
    for (const auto& [name, lw] : ck.linears) {
      const TensorView ours = dequantized_tensor(ck, {true, name});
      const std::vector<float> expected = reference_decode(lw);
      ASSERT_EQ(ours.nbytes, expected.size() * sizeof(float)) << name;
      EXPECT_EQ(std::memcmp(ours.data, expected.data(), ours.nbytes), 0) << name;
    }
    for (const auto& [name, t] : ck.tensors) {
      const TensorView ours = dequantized_tensor(ck, {false, name});
      const std::vector<float> expected = reference_widen(t);
      EXPECT_EQ(std::memcmp(ours.data, expected.data(), ours.nbytes), 0) << name;
    }
    if (c.layout == OutputLayout::kNvfp4 && c.scope == Nvfp4Scope::kExperts) {
      EXPECT_EQ(ck.linear("layers.0.attn.wq_a").encoding, WeightEncoding::kBF16);
      EXPECT_EQ(ck.linear("layers.0.ffn.shared_experts.w1").encoding, WeightEncoding::kBF16);
      EXPECT_EQ(ck.linear("layers.0.ffn.experts.0.w1").encoding, WeightEncoding::kNVFP4);
    }
  }
}

// transformers' in-memory layout: fused gate_up_proj [E, 2I, D] and down_proj [E, D, I],
// assembled here by hand from a BF16 checkpoint; the loader's per-expert views must
// hold exactly the original experts.
TEST(LoadCheckpoint, FusedExpertsSplitIntoPerExpertViews) {
  ScratchDir source("source");
  TestModelOptions options;
  options.layout = OutputLayout::kBF16;
  options.preset = "small";
  options.seed = 5;
  write_test_model(source.str(), options);
  const Checkpoint original = load_checkpoint(source.str(), quiet());
  const ModelConfig& c = original.config;

  ScratchDir fused("fused");
  std::vector<NamedTensor> tensors;
  for (const auto& [name, t] : original.tensors)
    tensors.push_back({to_stored(NamingScheme::kTransformers, TensorRole::kTensor, name), t});
  for (const auto& [name, lw] : original.linears) {
    if (name.find(".ffn.experts.") != std::string::npos && name.rfind("layers.", 0) == 0) continue;
    tensors.push_back({to_stored(NamingScheme::kTransformers, TensorRole::kLinearWeight, name, "weight"), lw.weight});
  }
  const int64_t E = c.n_routed_experts, I = c.moe_intermediate_size, D = c.hidden_size;
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    const std::string prefix = "layers." + std::to_string(layer) + ".ffn.experts";
    TensorView gate_up = make_owned_tensor(DType::BF16, {E, 2 * I, D});
    TensorView down = make_owned_tensor(DType::BF16, {E, D, I});
    for (int64_t e = 0; e < E; ++e) {
      const std::string x = prefix + "." + std::to_string(e) + ".";
      std::memcpy(mutable_data(gate_up) + (e * 2 * I) * D * 2, original.linear(x + "w1").weight.data, I * D * 2);
      std::memcpy(mutable_data(gate_up) + (e * 2 * I + I) * D * 2, original.linear(x + "w3").weight.data, I * D * 2);
      std::memcpy(mutable_data(down) + e * D * I * 2, original.linear(x + "w2").weight.data, D * I * 2);
    }
    tensors.push_back({to_stored(NamingScheme::kTransformers, TensorRole::kFusedGateUp, prefix), gate_up});
    tensors.push_back({to_stored(NamingScheme::kTransformers, TensorRole::kFusedDown, prefix), down});
  }
  write_safetensors(fused / "model.safetensors", tensors);
  std::filesystem::copy_file(source / "config.json", fused / "config.json");

  const Checkpoint ck = load_checkpoint(fused.str(), quiet());
  EXPECT_EQ(ck.naming_scheme, "transformers");
  ASSERT_EQ(ck.linears.size(), original.linears.size());
  for (const auto& [name, lw] : original.linears) {
    const LinearWeight& got = ck.linear(name);
    ASSERT_EQ(got.weight.nbytes, lw.weight.nbytes) << name;
    EXPECT_EQ(got.weight.shape, lw.weight.shape) << name;
    EXPECT_EQ(std::memcmp(got.weight.data, lw.weight.data, lw.weight.nbytes), 0) << name;
  }
  EXPECT_THAT(ck.stored_names.at("layers.1.ffn.experts.2.w3"), HasSubstr("model.layers.1.mlp.experts.gate_up_proj[2] up"));
}

TEST(LoadCheckpoint, ShardedWithIndexEqualsSingleFile) {
  ScratchDir single("single"), sharded("sharded");
  TestModelOptions options;
  options.preset = "small";
  options.seed = 11;
  write_test_model(single.str(), options);
  options.shard_bytes = 100000;
  const WriteReport report = write_test_model(sharded.str(), options);
  EXPECT_GT(report.shards, 3u);
  EXPECT_TRUE(std::filesystem::exists(sharded / "model.safetensors.index.json"));
  LoadOptions paged = quiet();
  paged.page_in = true;
  const Checkpoint a = load_checkpoint(single.str(), paged);
  const Checkpoint b = load_checkpoint(sharded.str(), paged);
  ASSERT_EQ(a.linears.size(), b.linears.size());
  for (const auto& [name, lw] : a.linears) {
    const LinearWeight& other = b.linear(name);
    EXPECT_EQ(other.encoding, lw.encoding);
    EXPECT_EQ(std::memcmp(other.weight.data, lw.weight.data, lw.weight.nbytes), 0) << name;
    ASSERT_EQ(other.scale.nbytes, lw.scale.nbytes) << name;
    if (lw.scale.nbytes > 0) {
      EXPECT_EQ(std::memcmp(other.scale.data, lw.scale.data, lw.scale.nbytes), 0) << name;
    }
  }
}

TEST(LoadCheckpoint, TestModelsAreDeterministicFromTheSeed) {
  ScratchDir a("a"), b("b"), c("c");
  TestModelOptions options;
  options.layout = OutputLayout::kNvfp4;
  options.preset = "small";
  options.seed = 42;
  write_test_model(a.str(), options);
  write_test_model(b.str(), options);
  options.seed = 43;
  write_test_model(c.str(), options);
  auto bytes = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(bytes(a / "model.safetensors"), bytes(b / "model.safetensors"));
  EXPECT_NE(bytes(a / "model.safetensors"), bytes(c / "model.safetensors"));
  EXPECT_EQ(bytes(a / "config.json"), bytes(b / "config.json"));
}

TEST(LoadCheckpoint, TinyPresetsCoverEveryLayerKindAndRouting) {
  for (const char* preset : {"tiny", "tiny-pro"}) {
    const ModelConfig c = test_model_config(preset);
    std::set<AttentionKind> kinds;
    bool hash = false, learned = false;
    for (int64_t i = 0; i < c.num_layers + c.num_mtp_layers; ++i) kinds.insert(c.attention_kind(i));
    for (int64_t i = 0; i < c.num_layers; ++i) (c.is_hash_layer(i) ? hash : learned) = true;
    EXPECT_EQ(kinds.size(), 3u) << preset;
    EXPECT_TRUE(hash && learned) << preset;
    EXPECT_EQ(c.num_mtp_layers, 1) << preset;
  }
}

}  // namespace
}  // namespace fp4serve

namespace fp4serve {
namespace {

// Variants of the native layout seen in the wild, made from the native fixture:
// HF's FP8 scale name, float32 FP8 scales (V4-Base style), and NVIDIA's DeepSeek-V4
// ModelOpt recipe (DeepSeek names, FP8 kept, routed experts NVFP4, MIXED_PRECISION).
class NativeVariants : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::copy(fixture_dir("native_small"), dir_.str(), std::filesystem::copy_options::recursive);
    std::filesystem::permissions(dir_ / "model.safetensors", std::filesystem::perms::owner_write,
                                 std::filesystem::perm_options::add);
    original_ = std::make_unique<Checkpoint>(load_checkpoint(fixture_dir("native_small"), quiet()));
  }
  std::string file() const { return dir_ / "model.safetensors"; }
  ScratchDir dir_{"variant"};
  std::unique_ptr<Checkpoint> original_;
};

TEST_F(NativeVariants, WeightScaleInvIsTheSameScale) {
  testing::rewrite(file(), [](std::vector<NamedTensor>& t) {
    for (auto& x : t)
      if (x.name == "layers.1.attn.wq_b.scale") x.name = "layers.1.attn.wq_b.weight_scale_inv";
  });
  const Checkpoint ck = load_checkpoint(dir_.str(), quiet());
  const LinearWeight& lw = ck.linear("layers.1.attn.wq_b");
  EXPECT_EQ(lw.encoding, WeightEncoding::kFP8Block);
  EXPECT_EQ(reference_decode(lw), reference_decode(original_->linear("layers.1.attn.wq_b")));
}

TEST_F(NativeVariants, Fp8WithFloat32Scales) {
  // The same FP8 codes with each E8M0 scale rewritten as the float32 it stands for.
  testing::rewrite(file(), [](std::vector<NamedTensor>& t) {
    NamedTensor& s = testing::find_tensor(t, "layers.0.attn.wo_b.scale");
    TensorView f32 = make_owned_tensor(DType::F32, s.tensor.shape);
    for (int64_t i = 0; i < s.tensor.numel(); ++i) {
      const float v = testing::e8m0(static_cast<uint8_t>(s.tensor.data[i]));
      std::memcpy(mutable_data(f32) + 4 * i, &v, 4);
    }
    s.tensor = f32;
  });
  const Checkpoint ck = load_checkpoint(dir_.str(), quiet());
  const LinearWeight& lw = ck.linear("layers.0.attn.wo_b");
  EXPECT_EQ(lw.scale.dtype, DType::F32);
  const TensorView ours = dequantized_tensor(ck, {true, "layers.0.attn.wo_b"});
  const std::vector<float> expected = reference_decode(original_->linear("layers.0.attn.wo_b"));
  EXPECT_EQ(std::memcmp(ours.data, expected.data(), ours.nbytes), 0);
}

TEST_F(NativeVariants, ModelOptDeepSeekV4RecipeMixesFp8AndNvfp4) {
  // Routed experts re-encoded as NVFP4 with ModelOpt's names; everything else stays FP8 / BF16.
  const ModelConfig& c = original_->config;
  testing::rewrite(file(), [&](std::vector<NamedTensor>& t) {
    std::erase_if(t, [](const NamedTensor& x) { return x.name.find(".ffn.experts.") != std::string::npos; });
    for (const auto& [name, lw] : original_->linears) {
      if (name.find(".ffn.experts.") == std::string::npos) continue;
      const std::vector<float> w = reference_decode(lw);
      Nvfp4Options o;
      o.input_scale = 0.01f;
      const LinearWeight q = quantize_nvfp4(w, lw.out_features, lw.in_features, o, name);
      TensorView g = make_owned_tensor(DType::F32, {}), in = make_owned_tensor(DType::F32, {});
      std::memcpy(mutable_data(g), &q.global_scale, 4);
      std::memcpy(mutable_data(in), &q.input_scale, 4);
      t.push_back({name + ".weight", q.weight});
      t.push_back({name + ".weight_scale", q.scale});
      t.push_back({name + ".weight_scale_2", g});
      t.push_back({name + ".input_scale", in});
    }
  });
  nlohmann::json config = read_json(dir_ / "config.json");
  config["quantization_config"]["quant_algo"] = "MIXED_PRECISION";
  config["quantization_config"]["moe_quant_algo"] = "NVFP4";
  config["quantization_config"]["group_size"] = 16;
  config["quantization_config"]["ignore"] = {"*.attn.*", "*.ffn.shared_experts.*", "*.ffn.gate", "head", "mtp.*"};
  std::ofstream(dir_ / "config.json") << config.dump(2);

  const Checkpoint ck = load_checkpoint(dir_.str(), quiet());
  EXPECT_EQ(ck.layout, "modelopt-nvfp4");
  EXPECT_EQ(ck.naming_scheme, "deepseek-native");
  EXPECT_EQ(ck.linear("layers.0.attn.wq_a").encoding, WeightEncoding::kFP8Block);
  EXPECT_EQ(ck.linear("layers.3.ffn.experts.1.w2").encoding, WeightEncoding::kNVFP4);
  EXPECT_EQ(ck.linear("layers.3.ffn.experts.1.w2").input_scale, 0.01f);
  // MTP experts are NVFP4 too although "mtp.*" is ignored: the stored encoding wins, with a warning.
  ASSERT_EQ(ck.warnings.size(), 1u);
  EXPECT_THAT(ck.warnings[0], HasSubstr("mtp.*.ffn.experts.*.w* (12 module(s)) are stored NVFP4"));
  EXPECT_EQ(c.num_layers, ck.config.num_layers);
}

}  // namespace
}  // namespace fp4serve
