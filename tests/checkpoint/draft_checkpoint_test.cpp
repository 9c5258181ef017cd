// The speculative-decoding modules under mtp.*: DeepSeek's DSpark drafter (V4-Flash-0731,
// V4-Pro-0813, V4-*-DSpark and NVIDIA's NVFP4 exports of them) and the preview's classic MTP.
// Configs are checked against the values DeepSeek ships (V4-Flash-0731 config.json: 43 layers,
// compress_ratios of 46 entries ending 0, 0, 0, dspark_block_size 5, dspark_noise_token_id
// 128799, dspark_target_layer_ids [40, 41, 42], dspark_markov_rank 256,
// num_nextn_predict_layers still 1); checkpoints are make-test-model's, in every layout.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/model_config_json.h"
#include "checkpoint/test_model.h"
#include "formats/weight_quantization.h"
#include "checkpoint_test_support.h"

namespace fp4serve {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;
using testing::find_tensor;
using testing::quiet;
using testing::rewrite;
using testing::ScratchDir;

// DeepSeek-V4-Flash-0731's config.json, the fields that matter here.
json flash_0731_config() {
  json c = {{"model_type", "deepseek_v4"},     {"vocab_size", 129280},      {"hidden_size", 4096},
            {"num_hidden_layers", 43},         {"num_nextn_predict_layers", 1},
            {"num_attention_heads", 64},       {"num_key_value_heads", 1}, {"head_dim", 512},
            {"qk_rope_head_dim", 64},          {"q_lora_rank", 1024},       {"o_lora_rank", 1024},
            {"o_groups", 8},                   {"sliding_window", 128},     {"index_n_heads", 64},
            {"index_head_dim", 128},           {"index_topk", 512},         {"n_routed_experts", 256},
            {"n_shared_experts", 1},           {"num_experts_per_tok", 6},  {"moe_intermediate_size", 2048},
            {"num_hash_layers", 3},            {"routed_scaling_factor", 1.5}, {"swiglu_limit", 10.0},
            {"hc_mult", 4},                    {"hc_sinkhorn_iters", 20},   {"scoring_func", "sqrtsoftplus"},
            {"rope_theta", 10000},             {"compress_rope_theta", 160000},
            {"rope_scaling", {{"type", "yarn"}, {"factor", 16}, {"original_max_position_embeddings", 65536},
                              {"beta_fast", 32}, {"beta_slow", 1}}},
            {"dspark_block_size", 5},          {"dspark_noise_token_id", 128799},
            {"dspark_target_layer_ids", {40, 41, 42}}, {"dspark_markov_rank", 256}};
  json ratios = json::array({0, 0});
  for (int i = 2; i < 43; ++i) ratios.push_back(i % 2 == 0 ? 4 : 128);
  for (int s = 0; s < 3; ++s) ratios.push_back(0);
  c["compress_ratios"] = ratios;
  return c;
}

std::string parse_error(const json& config, const DraftEvidence& index = {}) {
  try {
    parse_model_config(config, "config.json", index);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(DraftConfig, Flash0731IsDSparkWhateverNumNextnPredictLayersSays) {
  const ModelConfig c = parse_model_config(flash_0731_config(), "config.json");
  EXPECT_EQ(c.draft.kind, DraftKind::kDSpark);
  EXPECT_EQ(c.num_mtp_layers, 0);  // num_nextn_predict_layers: 1 is stale in the DSpark releases
  EXPECT_EQ(c.draft.num_stages, 3);
  EXPECT_EQ(c.num_draft_blocks(), 3);
  EXPECT_EQ(c.draft.block_size, 5);
  EXPECT_EQ(c.draft.noise_token_id, 128799);
  EXPECT_EQ(c.draft.target_layer_ids, (std::vector<int64_t>{40, 41, 42}));
  EXPECT_EQ(c.draft.markov_rank, 256);
  EXPECT_EQ(c.draft.sliding_window, 128);
  EXPECT_TRUE(c.draft.has_markov_head);
  EXPECT_TRUE(c.draft.has_confidence_head);
  EXPECT_FALSE(c.draft.inferred_parameters);
  ASSERT_EQ(c.compress_ratios.size(), 46u);
  for (int64_t s = 43; s < 46; ++s) EXPECT_EQ(c.attention_kind(s), AttentionKind::kSlidingWindow);
}

TEST(DraftConfig, InferenceConfigNamesTheStageCount) {
  // inference/config.json: ModelArgs names, n_mtp_layers 3 and no num_nextn_predict_layers.
  json c = flash_0731_config();
  c.erase("num_nextn_predict_layers");
  c["n_mtp_layers"] = 3;
  c["compress_ratios"] = json(std::vector<int>(c["compress_ratios"].begin(), c["compress_ratios"].begin() + 43));
  const ModelConfig m = parse_model_config(c, "inference/config.json");
  EXPECT_EQ(m.draft.num_stages, 3);
  EXPECT_EQ(m.compress_ratios.size(), 46u);
}

TEST(DraftConfig, PreviewConfigIsClassicMtp) {
  json c = flash_0731_config();
  for (const char* key : kDsparkKeys) c.erase(key);
  c["compress_ratios"].erase(c["compress_ratios"].size() - 1);
  c["compress_ratios"].erase(c["compress_ratios"].size() - 1);
  const ModelConfig m = parse_model_config(c, "config.json");
  EXPECT_EQ(m.draft.kind, DraftKind::kMtp);
  EXPECT_EQ(m.num_mtp_layers, 1);
  EXPECT_EQ(m.draft.block_size, 1);
  EXPECT_EQ(m.compress_ratios.size(), 44u);
}

TEST(DraftConfig, TheIndexDecidesWhenTheConfigIsSilent) {
  // A 0731 index (mtp.0.main_proj) under a config without dspark_* keys: DSpark, with the
  // tensors' shapes and DeepSeek's released values.
  json c = flash_0731_config();
  for (const char* key : kDsparkKeys) c.erase(key);
  DraftEvidence index;
  index.known = true;
  index.dspark_tensors = true;
  index.stages = 3;
  index.main_proj_in = 3 * 4096;
  index.markov_rank = 256;
  const ModelConfig m = parse_model_config(c, "config.json", index);
  EXPECT_EQ(m.draft.kind, DraftKind::kDSpark);
  EXPECT_TRUE(m.draft.inferred_parameters);
  EXPECT_EQ(m.num_mtp_layers, 0);
  EXPECT_EQ(m.draft.num_stages, 3);
  EXPECT_EQ(m.draft.block_size, 5);
  EXPECT_EQ(m.draft.noise_token_id, 128799);
  EXPECT_EQ(m.draft.target_layer_ids, (std::vector<int64_t>{40, 41, 42}));
  EXPECT_EQ(m.draft.markov_rank, 256);
}

TEST(DraftConfig, ErrorsNameTheField) {
  json missing = flash_0731_config();
  missing.erase("dspark_markov_rank");
  EXPECT_THAT(parse_error(missing), HasSubstr("missing field 'dspark_markov_rank'"));

  json target = flash_0731_config();
  target["dspark_target_layer_ids"] = {40, 41, 43};
  EXPECT_THAT(parse_error(target), HasSubstr("dspark_target_layer_ids[2] is 43; expected 0..42"));

  json repeated = flash_0731_config();
  repeated["dspark_target_layer_ids"] = {40, 41, 41};
  EXPECT_THAT(parse_error(repeated), HasSubstr("dspark_target_layer_ids lists layer 41 twice"));

  json noise = flash_0731_config();
  noise["dspark_noise_token_id"] = 129280;
  EXPECT_THAT(parse_error(noise), HasSubstr("dspark_noise_token_id is 129280; expected 0..129279"));

  json block = flash_0731_config();
  block["dspark_block_size"] = 0;
  EXPECT_THAT(parse_error(block), HasSubstr("dspark_block_size is 0"));

  json ratio = flash_0731_config();
  ratio["compress_ratios"][44] = 4;
  EXPECT_THAT(parse_error(ratio), HasSubstr("compress_ratios[44] is 4; DSpark stages are sliding-window layers"));

  json not_a_list = flash_0731_config();
  not_a_list["dspark_target_layer_ids"] = 40;
  EXPECT_THAT(parse_error(not_a_list), HasSubstr("field 'dspark_target_layer_ids' must be a list"));

  json stages = flash_0731_config();
  stages["n_mtp_layers"] = 2;
  stages.erase("num_nextn_predict_layers");
  DraftEvidence index;
  index.known = true;
  index.dspark_tensors = true;
  index.stages = 3;
  index.origin = "dir";
  EXPECT_THAT(parse_error(stages, index), HasSubstr("n_mtp_layers is 2 but dir holds DSpark stages mtp.0..mtp.2"));

  DraftEvidence classic;
  classic.known = classic.mtp_tensors = true;
  classic.stages = 1;
  classic.origin = "dir";
  EXPECT_THAT(parse_error(flash_0731_config(), classic), HasSubstr("holds a classic MTP head (mtp.0.e_proj)"));
}

TEST(DraftConfig, IndexHeadDimMayEqualTheRopeDims) {
  // Both references run index_head_dim == qk_rope_head_dim: the indexer then ropes every dim.
  json equal = flash_0731_config();
  equal["index_head_dim"] = 64;
  EXPECT_EQ(parse_model_config(equal, "config.json").index_head_dim, 64);
  json smaller = flash_0731_config();
  smaller["index_head_dim"] = 32;
  EXPECT_THAT(parse_error(smaller), HasSubstr("index_head_dim 32 is smaller than qk_rope_head_dim 64"));
}

// ---- Checkpoints on disk ----------------------------------------------------------------------

class DraftCheckpoints : public ::testing::TestWithParam<OutputLayout> {
 protected:
  std::string make(DraftKind draft) {
    TestModelOptions options;
    options.layout = GetParam();
    options.preset = "small";
    options.seed = 11;
    options.draft = draft;
    write_test_model(dir_.str(), options);
    return dir_.str();
  }
  ScratchDir dir_{"draft"};
};

TEST_P(DraftCheckpoints, DSparkLoadsAsShipped) {
  const Checkpoint ck = load_checkpoint(make(DraftKind::kDSpark), quiet());
  const ModelConfig& c = ck.config;
  ASSERT_EQ(c.draft.kind, DraftKind::kDSpark);
  EXPECT_EQ(c.num_mtp_layers, 0);
  EXPECT_EQ(c.draft.num_stages, 3);
  EXPECT_EQ(c.draft.block_size, 5);
  EXPECT_EQ(c.draft.target_layer_ids, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(c.draft.markov_rank, 16);
  EXPECT_EQ(c.draft.noise_token_id, c.vocab_size - 1);
  EXPECT_TRUE(ck.warnings.empty()) << ck.warnings.front();
  // Every stage is a full block without compressor or indexer; stage 0 projects the taps, the last
  // stage carries the heads.
  for (int s = 0; s < 3; ++s) {
    const std::string p = "mtp." + std::to_string(s) + ".";
    EXPECT_TRUE(ck.has_linear(p + "attn.wq_a"));
    EXPECT_TRUE(ck.has_linear(p + "ffn.experts.3.w2"));
    EXPECT_FALSE(ck.has_linear(p + "attn.compressor.wkv"));
    EXPECT_FALSE(ck.has_tensor(p + "ffn.gate.tid2eid"));
    EXPECT_EQ(ck.has_linear(p + "main_proj"), s == 0);
    EXPECT_EQ(ck.has_tensor(p + "hc_head_fn"), s == 2);
    EXPECT_EQ(ck.has_linear(p + "confidence_head.proj"), s == 2);
  }
  EXPECT_FALSE(ck.has_linear("mtp.0.e_proj"));
  const LinearWeight& main_proj = ck.linear("mtp.0.main_proj");
  EXPECT_EQ(main_proj.out_features, c.hidden_size);
  EXPECT_EQ(main_proj.in_features, 3 * c.hidden_size);
  EXPECT_EQ(ck.tensor("mtp.2.markov_head.markov_w1.weight").shape, (std::vector<int64_t>{c.vocab_size, 16}));
  EXPECT_EQ(ck.linear("mtp.2.markov_head.markov_w2").out_features, c.vocab_size);
  EXPECT_EQ(ck.linear("mtp.2.confidence_head.proj").in_features, c.hidden_size + 16);
  EXPECT_EQ(ck.linear("mtp.2.confidence_head.proj").out_features, 1);
}

TEST_P(DraftCheckpoints, DraftF32TensorsStayF32) {
  const Checkpoint ck = load_checkpoint(make(DraftKind::kDSpark), quiet());
  if (GetParam() == OutputLayout::kTransformersSaved)
    GTEST_SKIP() << "save_pretrained writes every tensor in the model dtype (BF16); nothing to keep F32";
  size_t f32 = 0;
  for (const auto& [name, t] : ck.tensors) {
    if (name.rfind("mtp.", 0) != 0) continue;
    const bool must_be_f32 = name.find("hc_") != std::string::npos || name.find("attn_sink") != std::string::npos ||
                             name.find("gate.bias") != std::string::npos;
    if (must_be_f32) {
      EXPECT_EQ(t.dtype, DType::F32) << name;
      ++f32;
    }
  }
  // 3 stages x (hc_attn 3 + hc_ffn 3 + attn_sink + gate.bias) + hc_head 3 on the last stage.
  EXPECT_EQ(f32, 3u * 8u + 3u);
}

TEST_P(DraftCheckpoints, DraftKeepsItsNativeEncodings) {
  const Checkpoint ck = load_checkpoint(make(DraftKind::kDSpark), quiet());
  const OutputLayout layout = GetParam();
  const bool native_draft = layout == OutputLayout::kNative || layout == OutputLayout::kNvfp4;
  // NVIDIA's NVFP4 exports of the DSpark releases quantize the main experts only.
  EXPECT_EQ(ck.linear("mtp.1.ffn.experts.0.w1").encoding,
            native_draft ? WeightEncoding::kMXFP4 : WeightEncoding::kBF16);
  EXPECT_EQ(ck.linear("mtp.0.main_proj").encoding, native_draft ? WeightEncoding::kFP8Block : WeightEncoding::kBF16);
  EXPECT_EQ(ck.linear("mtp.2.attn.wq_b").encoding, native_draft ? WeightEncoding::kFP8Block : WeightEncoding::kBF16);
  EXPECT_EQ(ck.linear("mtp.2.markov_head.markov_w2").encoding, WeightEncoding::kBF16);
  EXPECT_EQ(ck.linear("mtp.2.confidence_head.proj").encoding, WeightEncoding::kBF16);
  if (layout == OutputLayout::kNvfp4) {
    EXPECT_EQ(ck.linear("layers.0.ffn.experts.0.w1").encoding, WeightEncoding::kNVFP4);
    EXPECT_EQ(ck.layout, "modelopt-nvfp4");
    EXPECT_TRUE(ck.warnings.empty()) << ck.warnings.front();  // "mtp.*" is in the export's ignore list
  }
}

TEST_P(DraftCheckpoints, ClassicMtpLoads) {
  const Checkpoint ck = load_checkpoint(make(DraftKind::kMtp), quiet());
  EXPECT_EQ(ck.config.draft.kind, DraftKind::kMtp);
  EXPECT_EQ(ck.config.num_mtp_layers, 1);
  EXPECT_TRUE(ck.has_linear("mtp.0.e_proj"));
  EXPECT_FALSE(ck.has_linear("mtp.0.main_proj"));
}

TEST_P(DraftCheckpoints, NoDraft) {
  const Checkpoint ck = load_checkpoint(make(DraftKind::kNone), quiet());
  EXPECT_EQ(ck.config.draft.kind, DraftKind::kNone);
  EXPECT_EQ(ck.config.num_draft_blocks(), 0);
  EXPECT_EQ(ck.config.compress_ratios.size(), static_cast<size_t>(ck.config.num_layers));
}

INSTANTIATE_TEST_SUITE_P(EveryLayout, DraftCheckpoints,
                         ::testing::Values(OutputLayout::kNative, OutputLayout::kNvfp4, OutputLayout::kTransformersSaved,
                                           OutputLayout::kBF16),
                         [](const auto& info) {
                           std::string name(output_layout_name(info.param));
                           for (char& ch : name)
                             if (ch == '-') ch = '_';
                           return name;
                         });

// ---- Damaged drafts: errors name the tensor ---------------------------------------------------

class DraftErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    TestModelOptions options;
    options.layout = OutputLayout::kNative;
    options.preset = "small";
    options.seed = 5;
    options.draft = DraftKind::kDSpark;
    write_test_model(dir_.str(), options);
  }
  std::string file() const { return dir_ / "model.safetensors"; }
  std::string config_path() const { return dir_ / "config.json"; }
  json config() const {
    std::ifstream in(config_path());
    return json::parse(in);
  }
  void write_config(const json& c) const { std::ofstream(config_path()) << c.dump(2); }
  std::string load_error() {
    try {
      load_checkpoint(dir_.str(), quiet());
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  }
  ScratchDir dir_{"draft_errors"};
};

TEST_F(DraftErrors, MissingMarkovHead) {
  rewrite(file(), [](std::vector<NamedTensor>& t) {
    std::erase_if(t, [](const NamedTensor& n) { return n.name == "mtp.2.markov_head.markov_w1.weight"; });
  });
  EXPECT_THAT(load_error(), HasSubstr("mtp.2.markov_head.markov_w1.weight (expected mtp.2.markov_head.markov_w1.weight)"));
}

TEST_F(DraftErrors, MainProjOfTheWrongWidth) {
  // Two taps' worth of columns where the config names three target layers.
  ModelConfig c = with_draft(test_model_config("small"), DraftKind::kDSpark);
  c.draft.target_layer_ids = {2, 3};
  RandomMasters masters(c, 5, false);
  const ExpectedTensors expected = expected_tensors(c);
  rewrite(file(), [&](std::vector<NamedTensor>& t) {
    for (const ExpectedLinear& l : expected.linears) {
      if (l.name != "mtp.0.main_proj") continue;
      LinearWeight lw = quantize_weight(masters.linear(l), l.out_features, l.in_features, WeightEncoding::kBF16,
                                        l.name, {});
      std::erase_if(t, [](const NamedTensor& n) { return n.name.rfind("mtp.0.main_proj.", 0) == 0; });
      t.push_back(NamedTensor{"mtp.0.main_proj.weight", lw.weight});
    }
  });
  EXPECT_THAT(load_error(), HasSubstr("mtp.0.main_proj"));
  EXPECT_THAT(load_error(), HasSubstr("len(dspark_target_layer_ids) * hidden_size"));
}

TEST_F(DraftErrors, NanScaleOfADraftExpert) {
  rewrite(file(), [](std::vector<NamedTensor>& t) {
    mutable_data(find_tensor(t, "mtp.1.ffn.experts.2.w3.scale").tensor)[3] = std::byte{0xFF};  // E8M0 NaN
  });
  EXPECT_THAT(load_error(), HasSubstr("mtp.1.ffn.experts.2.w3.scale"));
}

TEST_F(DraftErrors, HcParameterStoredAsIntegers) {
  rewrite(file(), [](std::vector<NamedTensor>& t) {
    NamedTensor& n = find_tensor(t, "mtp.1.hc_ffn_base");
    n.tensor = make_owned_tensor(DType::I32, n.tensor.shape, n.name);
  });
  EXPECT_THAT(load_error(), HasSubstr("mtp.1.hc_ffn_base"));
}

TEST_F(DraftErrors, StageBeyondTheConfig) {
  json c = config();
  c["compress_ratios"].erase(c["compress_ratios"].size() - 1);  // the config now says 2 stages
  c["n_mtp_layers"] = 2;
  c.erase("num_nextn_predict_layers");
  write_config(c);
  EXPECT_THAT(load_error(), HasSubstr("n_mtp_layers is 2 but"));
}

TEST_F(DraftErrors, ClassicMtpHeadBesideDSparkKeys) {
  rewrite(file(), [](std::vector<NamedTensor>& t) {
    t.push_back(NamedTensor{"mtp.0.e_proj.weight", make_owned_tensor(DType::BF16, {64, 64}, "e_proj")});
  });
  EXPECT_THAT(load_error(), HasSubstr("holds a classic MTP head (mtp.0.e_proj)"));
}

TEST_F(DraftErrors, ConfigWithoutDsparkKeysIsDetectedFromTheIndex) {
  json c = config();
  for (const char* key : kDsparkKeys) c.erase(key);
  write_config(c);
  const Checkpoint ck = load_checkpoint(dir_.str(), quiet());
  EXPECT_EQ(ck.config.draft.kind, DraftKind::kDSpark);
  EXPECT_EQ(ck.config.draft.target_layer_ids, (std::vector<int64_t>{1, 2, 3}));  // from main_proj's width
  EXPECT_EQ(ck.config.draft.markov_rank, 16);                                   // from markov_w1
  ASSERT_EQ(ck.warnings.size(), 1u);
  EXPECT_THAT(ck.warnings[0], HasSubstr("config.json has no dspark_* keys"));
  EXPECT_THAT(ck.warnings[0], HasSubstr("dspark_noise_token_id unknown"));
}

TEST_F(DraftErrors, DSparkConfigWithoutDraftTensorsDisablesTheDraft) {
  rewrite(file(), [](std::vector<NamedTensor>& t) {
    std::erase_if(t, [](const NamedTensor& n) { return n.name.rfind("mtp.", 0) == 0; });
  });
  const Checkpoint ck = load_checkpoint(dir_.str(), quiet());
  EXPECT_EQ(ck.config.draft.kind, DraftKind::kNone);
  ASSERT_EQ(ck.warnings.size(), 1u);
  EXPECT_THAT(ck.warnings[0], HasSubstr("DSpark draft of 3 stage(s)"));
}

TEST_F(DraftErrors, NvidiaNvfp4ExportOfADSparkRelease) {
  // NVIDIA's DeepSeek-V4-Flash-0731-NVFP4 shape: DeepSeek names, the main layers' routed experts
  // re-encoded NVFP4 (weight, weight_scale, weight_scale_2, input_scale), the DSpark draft untouched
  // (MXFP4 experts, FP8 linears), quantization_config fp8 + moe_quant_algo NVFP4, "mtp.*" ignored.
  const Checkpoint original = load_checkpoint(dir_.str(), quiet());
  json quantized_layers = json::object();
  rewrite(file(), [&](std::vector<NamedTensor>& t) {
    std::erase_if(t, [](const NamedTensor& x) {
      return x.name.rfind("layers.", 0) == 0 && x.name.find(".ffn.experts.") != std::string::npos;
    });
    for (const auto& [name, lw] : original.linears) {
      if (name.rfind("layers.", 0) != 0 || name.find(".ffn.experts.") == std::string::npos) continue;
      Nvfp4Options o;
      o.input_scale = 0.02f;
      const LinearWeight q = quantize_nvfp4(testing::reference_decode(lw), lw.out_features, lw.in_features, o, name);
      TensorView g = make_owned_tensor(DType::F32, {}), in = make_owned_tensor(DType::F32, {});
      std::memcpy(mutable_data(g), &q.global_scale, 4);
      std::memcpy(mutable_data(in), &q.input_scale, 4);
      t.push_back({name + ".weight", q.weight});
      t.push_back({name + ".weight_scale", q.scale});
      t.push_back({name + ".weight_scale_2", g});
      t.push_back({name + ".input_scale", in});
      quantized_layers[name.substr(0, name.find(".ffn.experts.") + 12)] = {{"quant_algo", "NVFP4"}, {"group_size", 16}};
    }
  });
  json c = config();
  c["quantization_config"]["quant_algo"] = "MIXED_PRECISION";
  c["quantization_config"]["moe_quant_algo"] = "NVFP4";
  c["quantization_config"]["group_size"] = 16;
  c["quantization_config"]["ignore"] = {"*.attn.*", "*.ffn.shared_experts.*", "head", "mtp.*"};
  c["quantization_config"]["quantized_layers"] = quantized_layers;
  write_config(c);

  const Checkpoint ck = load_checkpoint(dir_.str(), quiet());
  EXPECT_EQ(ck.layout, "modelopt-nvfp4");
  EXPECT_EQ(ck.config.draft.kind, DraftKind::kDSpark);
  EXPECT_EQ(ck.linear("layers.2.ffn.experts.1.w3").encoding, WeightEncoding::kNVFP4);
  EXPECT_EQ(ck.linear("mtp.1.ffn.experts.1.w3").encoding, WeightEncoding::kMXFP4);
  EXPECT_EQ(ck.linear("mtp.0.main_proj").encoding, WeightEncoding::kFP8Block);
  EXPECT_EQ(ck.tensor("mtp.2.hc_head_fn").dtype, DType::F32);
  EXPECT_TRUE(ck.warnings.empty()) << ck.warnings.front();
}

// ---- inspect --------------------------------------------------------------------------------

TEST(DraftInspect, TextAndJsonShowTheDraft) {
  ScratchDir dir("draft_inspect");
  TestModelOptions options;
  options.preset = "small";
  options.draft = DraftKind::kDSpark;
  write_test_model(dir.str(), options);
  const testing::CliResult text = testing::fp4serve("inspect " + dir.str());
  ASSERT_EQ(text.status, 0) << text.output;
  EXPECT_THAT(text.output, HasSubstr("draft        dspark: 3 stages, block 5 (noise token 63), taps layers [1, 2, 3], "
                                     "window 8, Markov head rank 16, confidence head yes;"));
  EXPECT_THAT(text.output, HasSubstr("mtp.2   SWA        0      learned"));
  const testing::CliResult js = testing::fp4serve("inspect " + dir.str() + " --json");
  ASSERT_EQ(js.status, 0) << js.output;
  const json report = json::parse(js.output);
  const json& d = report.at("draft");
  EXPECT_EQ(d.at("kind"), "dspark");
  EXPECT_EQ(d.at("stages"), 3);
  EXPECT_EQ(d.at("block_size"), 5);
  EXPECT_EQ(d.at("target_layer_ids"), json({1, 2, 3}));
  EXPECT_EQ(d.at("markov_rank"), 16);
  // Tensors and bytes, counted independently from the module and tensor lists of the same report.
  uint64_t bytes = 0, tensors = 0;
  for (const json& m : report.at("modules")) {
    if (m.at("name").get<std::string>().rfind("mtp.", 0) != 0) continue;
    bytes += m.at("bytes").get<uint64_t>();
    tensors += m.at("encoding") == "bf16" ? 1 : 2;  // weight (+ one block scale: fp8-block and mxfp4)
  }
  for (const json& t : report.at("tensors")) {
    if (t.at("name").get<std::string>().rfind("mtp.", 0) != 0) continue;
    bytes += t.at("bytes").get<uint64_t>();
    ++tensors;
  }
  EXPECT_EQ(d.at("bytes").get<uint64_t>(), bytes);
  EXPECT_EQ(d.at("tensors").get<uint64_t>(), tensors);
}

// ---- The CLI, as a user runs it ----------------------------------------------------------------

TEST(DraftCli, MakeTestModelWritesBothDraftsInEveryLayout) {
  ScratchDir dir("draft_cli");
  for (const char* layout : {"native", "nvfp4", "transformers-saved", "bf16"}) {
    for (const char* draft : {"dspark", "mtp"}) {
      const std::string out = dir / (std::string(layout) + "_" + draft);
      const testing::CliResult made =
          testing::fp4serve("make-test-model " + out + " --layout " + layout + " --draft " + draft + " --preset small");
      ASSERT_EQ(made.status, 0) << made.output;
      EXPECT_THAT(made.output, HasSubstr(std::string("draft ") + draft));
      const testing::CliResult shown = testing::fp4serve("inspect " + out);
      ASSERT_EQ(shown.status, 0) << shown.output;
      EXPECT_THAT(shown.output, HasSubstr(std::string("draft        ") + draft + ":")) << layout;
    }
  }
  const testing::CliResult bad = testing::fp4serve("make-test-model " + (dir / "x") + " --draft eagle");
  EXPECT_NE(bad.status, 0);
  EXPECT_THAT(bad.output, HasSubstr("--draft 'eagle': expected mtp, dspark or none"));
}

TEST(DraftCli, TheTargetGeneratesTheSameWithOrWithoutADraft) {
  // Until the draft forward lands, a DSpark checkpoint serves through its main layers; values
  // depend only on seed and name, so its main layers are the draft-less checkpoint's.
  ScratchDir dir("draft_generate");
  std::string outputs[2];
  const char* drafts[2] = {"dspark", "none"};
  for (int i = 0; i < 2; ++i) {
    const std::string out = dir / drafts[i];
    ASSERT_EQ(testing::fp4serve("make-test-model " + out + " --draft " + drafts[i] + " --seed 4").status, 0);
    const testing::CliResult r =
        testing::fp4serve("generate " + out + " --tokens 1,2,3,4 --max-tokens 6 --temperature 0");
    ASSERT_EQ(r.status, 0) << r.output;
    outputs[i] = r.output.substr(0, r.output.find('\n'));
  }
  EXPECT_EQ(outputs[0], outputs[1]);
  EXPECT_FALSE(outputs[0].empty());
}

TEST(DraftCli, QuantizeKeepsTheDraftAndItsEncodings) {
  ScratchDir dir("draft_quantize");
  const std::string src = dir / "src";
  ASSERT_EQ(testing::fp4serve("make-test-model " + src + " --layout bf16 --draft dspark --preset small").status, 0);
  for (const char* target : {"native", "nvfp4"}) {
    const std::string out = dir / target;
    const testing::CliResult r = testing::fp4serve("quantize " + src + " " + out + " --to " + target);
    ASSERT_EQ(r.status, 0) << r.output;
    const Checkpoint ck = load_checkpoint(out, quiet());
    EXPECT_EQ(ck.config.draft.kind, DraftKind::kDSpark) << target;
    EXPECT_EQ(ck.config.draft.num_stages, 3) << target;
    EXPECT_EQ(ck.linear("mtp.2.ffn.experts.1.w2").encoding, WeightEncoding::kMXFP4) << target;
    EXPECT_EQ(ck.linear("mtp.0.main_proj").encoding, WeightEncoding::kFP8Block) << target;
    EXPECT_EQ(ck.tensor("mtp.0.hc_attn_fn").dtype, DType::F32) << target;
  }
}

}  // namespace
}  // namespace fp4serve
