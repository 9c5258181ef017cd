// config.json parsing in all three styles, checked against values written out from
// the published configs (DeepSeek-V4's config.json and inference/config.json, transformers'
// DeepseekV4Config) and the test presets, and every rejection.
#include "checkpoint/model_config_json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace fp4serve {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// V4-Flash's HF config.json, verbatim values.
json flash_hf_config() {
  json ratios = json::array({0, 0});
  for (int i = 0; i < 20; ++i) {
    ratios.push_back(4);
    ratios.push_back(128);
  }
  ratios.push_back(4);
  ratios.push_back(0);
  return {{"architectures", {"DeepseekV4ForCausalLM"}},
          {"model_type", "deepseek_v4"},
          {"vocab_size", 129280},
          {"hidden_size", 4096},
          {"num_hidden_layers", 43},
          {"num_nextn_predict_layers", 1},
          {"num_attention_heads", 64},
          {"num_key_value_heads", 1},
          {"head_dim", 512},
          {"qk_rope_head_dim", 64},
          {"q_lora_rank", 1024},
          {"o_lora_rank", 1024},
          {"o_groups", 8},
          {"sliding_window", 128},
          {"compress_ratios", ratios},
          {"compress_rope_theta", 160000},
          {"rope_theta", 10000},
          {"rope_scaling",
           {{"type", "yarn"},
            {"factor", 16},
            {"original_max_position_embeddings", 65536},
            {"beta_fast", 32},
            {"beta_slow", 1}}},
          {"max_position_embeddings", 1048576},
          {"index_n_heads", 64},
          {"index_head_dim", 128},
          {"index_topk", 512},
          {"n_routed_experts", 256},
          {"n_shared_experts", 1},
          {"num_experts_per_tok", 6},
          {"moe_intermediate_size", 2048},
          {"num_hash_layers", 3},
          {"scoring_func", "sqrtsoftplus"},
          {"topk_method", "noaux_tc"},
          {"norm_topk_prob", true},
          {"routed_scaling_factor", 1.5},
          {"swiglu_limit", 10.0},
          {"hidden_act", "silu"},
          {"hc_mult", 4},
          {"hc_sinkhorn_iters", 20},
          {"hc_eps", 1e-6},
          {"rms_norm_eps", 1e-6},
          {"expert_dtype", "fp4"},
          {"tie_word_embeddings", false},
          {"attention_bias", false},
          {"bos_token_id", 0},
          {"eos_token_id", 1}};
}

// The same model as transformers' DeepseekV4Config writes it (its re-keyed names).
json flash_transformers_config() {
  json c = flash_hf_config();
  json layer_types = json::array({"sliding_attention", "sliding_attention"});
  for (int i = 0; i < 20; ++i) {
    layer_types.push_back("compressed_sparse_attention");
    layer_types.push_back("heavily_compressed_attention");
  }
  layer_types.push_back("compressed_sparse_attention");
  json mlp = json::array();
  for (int i = 0; i < 43; ++i) mlp.push_back(i < 3 ? "hash_moe" : "moe");
  for (const char* k : {"compress_ratios", "num_hash_layers", "qk_rope_head_dim", "rope_scaling", "compress_rope_theta",
                        "expert_dtype"})
    c.erase(k);
  c["layer_types"] = layer_types;
  c["compress_rates"] = {{"compressed_sparse_attention", 4}, {"heavily_compressed_attention", 128}};
  c["mlp_layer_types"] = mlp;
  c["partial_rotary_factor"] = 0.125;
  c["rope_parameters"] = {
      {"main", {{"rope_type", "default"}, {"rope_theta", 10000.0}, {"partial_rotary_factor", 0.125}}},
      {"compress",
       {{"rope_type", "yarn"},
        {"rope_theta", 160000.0},
        {"factor", 16.0},
        {"original_max_position_embeddings", 65536},
        {"beta_fast", 32.0},
        {"beta_slow", 1.0},
        {"attention_factor", 1.0},
        {"partial_rotary_factor", 0.125}}}};
  return c;
}

void expect_flash(const ModelConfig& c) {
  EXPECT_EQ(c.vocab_size, 129280);
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.num_layers, 43);
  EXPECT_EQ(c.num_mtp_layers, 1);
  EXPECT_EQ(c.num_heads, 64);
  EXPECT_EQ(c.head_dim, 512);
  EXPECT_EQ(c.rope_head_dim, 64);
  EXPECT_EQ(c.q_lora_rank, 1024);
  EXPECT_EQ(c.o_lora_rank, 1024);
  EXPECT_EQ(c.o_groups, 8);
  EXPECT_EQ(c.sliding_window, 128);
  ASSERT_EQ(c.compress_ratios.size(), 44u);
  // The layer schedule: Flash layers 0,1 SWA; even layers 2..42 CSA; odd 3..41 HCA; MTP SWA.
  for (int i = 0; i < 44; ++i) {
    const int64_t expected = (i < 2 || i == 43) ? 0 : (i % 2 == 0 ? 4 : 128);
    EXPECT_EQ(c.compress_ratios[i], expected) << "layer " << i;
  }
  EXPECT_EQ(c.attention_kind(0), AttentionKind::kSlidingWindow);
  EXPECT_EQ(c.attention_kind(2), AttentionKind::kCompressedSparse);
  EXPECT_EQ(c.attention_kind(3), AttentionKind::kHeavilyCompressed);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.compress_rope_theta, 160000.0);
  EXPECT_EQ(c.yarn.factor, 16.0);
  EXPECT_EQ(c.yarn.original_max_position, 65536);
  EXPECT_EQ(c.yarn.beta_fast, 32.0);
  EXPECT_EQ(c.yarn.beta_slow, 1.0);
  EXPECT_EQ(c.max_position_embeddings, 1048576);
  EXPECT_EQ(c.index_n_heads, 64);
  EXPECT_EQ(c.index_head_dim, 128);
  EXPECT_EQ(c.index_topk, 512);
  EXPECT_EQ(c.n_routed_experts, 256);
  EXPECT_EQ(c.n_shared_experts, 1);
  EXPECT_EQ(c.experts_per_token, 6);
  EXPECT_EQ(c.moe_intermediate_size, 2048);
  EXPECT_EQ(c.num_hash_layers, 3);
  EXPECT_TRUE(c.is_hash_layer(2));
  EXPECT_FALSE(c.is_hash_layer(3));
  EXPECT_EQ(c.scoring_func, "sqrtsoftplus");
  EXPECT_EQ(c.routed_scaling_factor, 1.5);
  EXPECT_EQ(c.swiglu_limit, 10.0);
  EXPECT_EQ(c.hc_mult, 4);
  EXPECT_EQ(c.hc_sinkhorn_iters, 20);
  EXPECT_EQ(c.hc_eps, 1e-6);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.bos_token_id, 0);
  EXPECT_EQ(c.eos_token_id, 1);
}

std::string error_of(const json& config) {
  try {
    parse_model_config(config, "config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ModelConfig, DeepSeekHfStyle) { expect_flash(parse_model_config(flash_hf_config(), "config.json")); }

TEST(ModelConfig, TransformersStyle) { expect_flash(parse_model_config(flash_transformers_config(), "config.json")); }

TEST(ModelConfig, TransformersStyleWithFlattenedRopeParametersAndCopiedCompressRatios) {
  // The ModelOpt export of the field report: compress_ratios copied from the source, rope_parameters flattened.
  json c = flash_transformers_config();
  c["compress_ratios"] = flash_hf_config()["compress_ratios"];
  c["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 16}, {"original_max_position_embeddings", 65536},
                          {"beta_fast", 32},     {"beta_slow", 1}};
  c["compress_rope_theta"] = 160000;
  expect_flash(parse_model_config(c, "config.json"));
}

TEST(ModelConfig, DeepSeekInferenceStyleTinyConfig) {
  // The tiny test configuration (src/checkpoint/test_model.cpp), in ModelArgs names.
  const json tiny = json::parse(R"({
    "vocab_size": 512, "dim": 256, "moe_inter_dim": 128,
    "n_layers": 4, "n_hash_layers": 2, "n_mtp_layers": 1,
    "n_heads": 4, "head_dim": 128, "rope_head_dim": 64, "q_lora_rank": 128,
    "o_groups": 2, "o_lora_rank": 128, "window_size": 16,
    "compress_ratios": [0, 4, 16, 4, 0],
    "index_n_heads": 4, "index_head_dim": 128, "index_topk": 4,
    "n_routed_experts": 8, "n_shared_experts": 1, "n_activated_experts": 2,
    "score_func": "sqrtsoftplus", "route_scale": 1.5, "swiglu_limit": 10.0,
    "rope_theta": 10000, "compress_rope_theta": 160000, "original_seq_len": 65536,
    "rope_factor": 16, "beta_fast": 32, "beta_slow": 1,
    "hc_mult": 4, "hc_sinkhorn_iters": 20, "hc_eps": 1e-6, "norm_eps": 1e-6,
    "dtype": "fp8", "scale_fmt": "ue8m0", "expert_dtype": "fp4",
    "max_seq_len": 512, "max_batch_size": 2})");
  const ModelConfig c = parse_model_config(tiny, "inference/config.json");
  EXPECT_EQ(c.hidden_size, 256);
  EXPECT_EQ(c.moe_intermediate_size, 128);
  EXPECT_EQ(c.num_layers, 4);
  EXPECT_EQ(c.num_hash_layers, 2);
  EXPECT_EQ(c.num_mtp_layers, 1);
  EXPECT_EQ(c.rope_head_dim, 64);
  EXPECT_EQ(c.sliding_window, 16);
  EXPECT_EQ(c.compress_ratios, (std::vector<int64_t>{0, 4, 16, 4, 0}));
  EXPECT_EQ(c.experts_per_token, 2);
  EXPECT_EQ(c.routed_scaling_factor, 1.5);
  EXPECT_EQ(c.yarn.factor, 16.0);
  EXPECT_EQ(c.yarn.original_max_position, 65536);
  EXPECT_EQ(c.attention_kind(2), AttentionKind::kHeavilyCompressed);
}

TEST(ModelConfig, CompressRatiosWithoutMtpEntryGetSlidingWindowMtp) {
  json c = flash_hf_config();
  c["compress_ratios"].erase(43);
  const ModelConfig m = parse_model_config(c, "config.json");
  ASSERT_EQ(m.compress_ratios.size(), 44u);
  EXPECT_EQ(m.compress_ratios[43], 0);
}

TEST(ModelConfig, WritersRoundTrip) {
  const ModelConfig flash = parse_model_config(flash_hf_config(), "config.json");
  expect_flash(parse_model_config(deepseek_style_config(flash), "written"));
  expect_flash(parse_model_config(transformers_style_config(flash), "written"));
}

TEST(ModelConfig, ErrorsNameTheField) {
  auto with = [](const char* key, json value) {
    json c = flash_hf_config();
    c[key] = std::move(value);
    return c;
  };
  EXPECT_THAT(error_of(with("compress_ratios", json::array({0, 4}))),
              HasSubstr("config.json: field 'compress_ratios' has 2 entries; expected 43"));
  EXPECT_THAT(error_of(with("num_key_value_heads", 8)), HasSubstr("num_key_value_heads is 8"));
  EXPECT_THAT(error_of(with("hidden_size", "big")), HasSubstr("field 'hidden_size' must be an integer"));
  EXPECT_THAT(error_of(with("dim", 2048)), HasSubstr("fields 'hidden_size' (4096) and 'dim' (2048) disagree"));
  EXPECT_THAT(error_of(with("model_type", "deepseek_v3")), HasSubstr("model_type is 'deepseek_v3'"));
  EXPECT_THAT(error_of(with("tie_word_embeddings", true)), HasSubstr("tie_word_embeddings"));
  EXPECT_THAT(error_of(with("num_hash_layers", 50)), HasSubstr("num_hash_layers is 50"));
  EXPECT_THAT(error_of(with("o_groups", 7)), HasSubstr("not a multiple of o_groups 7"));
  EXPECT_THAT(error_of(with("num_hidden_layers", 1000000000)), HasSubstr("num_hidden_layers is 1000000000"));
  json mtp_compressed = flash_hf_config();
  mtp_compressed["compress_ratios"][43] = 4;
  EXPECT_THAT(error_of(mtp_compressed), HasSubstr("compress_ratios[43] is 4; MTP layers are sliding-window"));
  json missing = flash_hf_config();
  missing.erase("head_dim");
  EXPECT_THAT(error_of(missing), HasSubstr("missing field 'head_dim'"));
  json yarn_scaled = flash_hf_config();
  yarn_scaled["rope_scaling"]["mscale"] = 0.707;
  EXPECT_THAT(error_of(yarn_scaled), HasSubstr("attention_factor is 0.707"));
}

TEST(ModelConfig, TransformersErrorsNameTheField) {
  auto with = [](const char* key, json value) {
    json c = flash_transformers_config();
    c[key] = std::move(value);
    return c;
  };
  json bad_type = flash_transformers_config();
  bad_type["layer_types"][5] = "full_attention";
  EXPECT_THAT(error_of(bad_type), HasSubstr("layer_types[5] is 'full_attention'"));
  json hash_late = flash_transformers_config();
  hash_late["mlp_layer_types"][10] = "hash_moe";
  EXPECT_THAT(error_of(hash_late), HasSubstr("mlp_layer_types[10] is hash_moe after a moe layer"));
  EXPECT_THAT(error_of(with("compress_rates", {{"compressed_sparse_attention", 8}})),
              HasSubstr("compress rate of compressed_sparse_attention is 8"));
  EXPECT_THAT(error_of(with("partial_rotary_factor", 0.3)), HasSubstr("partial_rotary_factor 0.3"));
  json disagree = flash_transformers_config();
  disagree["compress_ratios"] = flash_hf_config()["compress_ratios"];
  disagree["compress_ratios"][3] = 4;
  EXPECT_THAT(error_of(disagree), HasSubstr("compress_ratios[3] = 4 disagrees with layer_types[3] (ratio 128)"));
  json theta = flash_transformers_config();
  theta["rope_parameters"]["compress"]["rope_theta"] = 12345.0;
  theta["compress_rope_theta"] = 160000;
  EXPECT_THAT(error_of(theta), HasSubstr("rope_parameters.compress.rope_theta (12345) disagrees"));
  json neither = flash_transformers_config();
  neither.erase("layer_types");
  EXPECT_THAT(error_of(neither), HasSubstr("missing field 'compress_ratios' (or 'layer_types')"));
}

TEST(ModelConfig, MalformedJsonTextIsAnErrorNamingTheFile) {
  EXPECT_THROW(parse_model_config_text("{\"vocab_size\": ", "some/config.json"), Error);
  try {
    parse_model_config_text("[1, 2]", "some/config.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("some/config.json"));
  }
}

}  // namespace
}  // namespace fp4serve
