// Quantization configs as shipped (DeepSeek-V4's config.json quantization_config, ModelOpt's
// hf_quant_config.json) and
// their rejections; ModelOpt's exclude globs.
#include "checkpoint/quant_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "checkpoint/progress_bar.h"

namespace fp4serve {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

QuantConfig parse(const json& config, const json* hf = nullptr) {
  return parse_quant_config(config, hf, "config.json", "hf_quant_config.json");
}

std::string error_of(const json& config, const json* hf = nullptr) {
  try {
    parse(config, hf);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

const json kDeepSeek = {{"quantization_config",
                         {{"activation_scheme", "dynamic"},
                          {"fmt", "e4m3"},
                          {"quant_method", "fp8"},
                          {"scale_fmt", "ue8m0"},
                          {"weight_block_size", {128, 128}}}},
                        {"expert_dtype", "fp4"}};

TEST(QuantConfig, DeepSeekNative) {
  const QuantConfig q = parse(kDeepSeek);
  EXPECT_TRUE(q.fp8_block);
  EXPECT_TRUE(q.ue8m0_scales);
  EXPECT_EQ(q.expert_dtype, "fp4");
  EXPECT_FALSE(q.modelopt);
  EXPECT_FALSE(q.claims_nvfp4("layers.0.ffn.experts.0.w1", true).has_value());
}

TEST(QuantConfig, NoneForBf16) {
  const QuantConfig q = parse(json::object());
  EXPECT_FALSE(q.any());
  EXPECT_EQ(q.describe(), "none (unquantized)");
}

TEST(QuantConfig, ModelOptHfQuantConfigNvfp4) {
  const json hf = {{"producer", {{"name", "modelopt"}, {"version", "0.37.0"}}},
                   {"quantization",
                    {{"quant_algo", "NVFP4"},
                     {"kv_cache_quant_algo", nullptr},
                     {"group_size", 16},
                     {"exclude_modules", {"lm_head", "model.layers.*.mlp.gate", "model.layers.*.self_attn.o_a_proj"}}}}};
  const QuantConfig q = parse(json::object(), &hf);
  EXPECT_TRUE(q.modelopt);
  EXPECT_EQ(q.quant_algo, "NVFP4");
  EXPECT_EQ(q.group_size, 16);
  EXPECT_EQ(q.producer, "modelopt 0.37.0");
  EXPECT_EQ(q.claims_nvfp4("model.layers.3.self_attn.q_a_proj", false), true);
  EXPECT_EQ(q.claims_nvfp4("model.layers.3.self_attn.o_a_proj", false), false);
  EXPECT_EQ(q.claims_nvfp4("model.layers.12.mlp.gate", false), false);
  EXPECT_EQ(q.claims_nvfp4("model.layers.12.mlp.experts.3.gate_proj", true), true);
  EXPECT_EQ(q.claims_nvfp4("lm_head", false), false);
}

TEST(QuantConfig, ModelOptQuantizationConfigInConfigJsonMirrorsHfQuantConfig) {
  const json config = {{"quantization_config",
                        {{"quant_method", "modelopt"},
                         {"quant_algo", "NVFP4"},
                         {"config_groups",
                          {{"group_0",
                            {{"weights", {{"num_bits", 4}, {"type", "float"}, {"group_size", 16}}},
                             {"targets", {"Linear"}}}}}},
                         {"ignore", {"lm_head", "mtp.*"}}}}};
  const json hf = {{"quantization", {{"quant_algo", "NVFP4"}, {"group_size", 16}, {"exclude_modules", {"lm_head"}}}}};
  const QuantConfig q = parse(config, &hf);
  EXPECT_EQ(q.exclude_patterns, (std::vector<std::string>{"lm_head", "mtp.*"}));
  EXPECT_EQ(q.claims_nvfp4("mtp.0.e_proj", false), false);
  const json other = {{"quantization", {{"quant_algo", "W4A16_NVFP4"}}}};
  EXPECT_THAT(error_of(config, &other), HasSubstr("quant_algo is 'W4A16_NVFP4' but 'NVFP4' was given elsewhere"));
}

// NVIDIA's DeepSeek-V4 recipe: native FP8 kept, routed experts NVFP4.
TEST(QuantConfig, DeepSeekV4ModelOptMixedPrecision) {
  json config = kDeepSeek;
  config["quantization_config"]["quant_algo"] = "MIXED_PRECISION";
  config["quantization_config"]["moe_quant_algo"] = "NVFP4";
  config["quantization_config"]["group_size"] = 16;
  config["quantization_config"]["ignore"] = {"*.attn.*", "*.ffn.shared_experts.*", "head", "mtp.*"};
  config["quantization_config"]["quantized_layers"] = {
      {"layers.3.ffn.experts.0.w1", {{"quant_algo", "NVFP4"}, {"group_size", 16}}}};
  const QuantConfig q = parse(config);
  EXPECT_TRUE(q.fp8_block);
  EXPECT_TRUE(q.modelopt);
  EXPECT_EQ(q.claims_nvfp4("layers.3.ffn.experts.0.w1", true), true);
  EXPECT_EQ(q.claims_nvfp4("layers.5.ffn.experts.9.w2", true), true);  // moe_quant_algo
  EXPECT_EQ(q.claims_nvfp4("layers.5.attn.wq_a", false), false);
  EXPECT_EQ(q.claims_nvfp4("layers.5.ffn.shared_experts.w1", false), false);
  EXPECT_EQ(q.claims_nvfp4("head", false), false);
}

TEST(QuantConfig, UnsupportedValuesNameTheField) {
  json block = kDeepSeek;
  block["quantization_config"]["weight_block_size"] = {64, 64};
  EXPECT_THAT(error_of(block), HasSubstr("config.json quantization_config: weight_block_size is [64,64]"));
  json fmt = kDeepSeek;
  fmt["quantization_config"]["fmt"] = "e5m2";
  EXPECT_THAT(error_of(fmt), HasSubstr("fmt is 'e5m2'"));
  json method = kDeepSeek;
  method["quantization_config"]["quant_method"] = "gptq";
  EXPECT_THAT(error_of(method), HasSubstr("quant_method is 'gptq'"));
  json expert = kDeepSeek;
  expert["expert_dtype"] = "int4";
  EXPECT_THAT(error_of(expert), HasSubstr("expert_dtype is 'int4'"));
  const json group = {{"quantization", {{"quant_algo", "NVFP4"}, {"group_size", 32}}}};
  EXPECT_THAT(error_of(json::object(), &group), HasSubstr("group_size is 32"));
  const json fp8 = {{"quantization", {{"quant_algo", "FP8"}}}};
  EXPECT_THAT(error_of(json::object(), &fp8), HasSubstr("hf_quant_config.json: quant_algo is 'FP8'"));
  const json no_block = {{"producer", {}}};
  EXPECT_THAT(error_of(json::object(), &no_block), HasSubstr("missing object 'quantization'"));
  const json layer = {{"quantization",
                       {{"quant_algo", "MIXED_PRECISION"}, {"quantized_layers", {{"x", {{"quant_algo", "INT4_AWQ"}}}}}}}};
  EXPECT_THAT(error_of(json::object(), &layer), HasSubstr("quantized_layers['x'].quant_algo is 'INT4_AWQ'"));
}

TEST(QuantConfig, ExcludeGlobsMatchLikeFnmatchAndCoverSubmodules) {
  EXPECT_TRUE(module_matches("model.layers.*.mlp.gate", "model.layers.12.mlp.gate"));
  EXPECT_FALSE(module_matches("model.layers.*.mlp.gate", "model.layers.12.mlp.gate_proj"));
  EXPECT_TRUE(module_matches("*self_attn*", "model.layers.0.self_attn.q_a_proj"));
  EXPECT_TRUE(module_matches("model.layers.0.self_attn", "model.layers.0.self_attn.kv_proj"));
  EXPECT_FALSE(module_matches("model.layers.1", "model.layers.10.mlp.gate"));
  EXPECT_TRUE(module_matches("lm_head", "lm_head"));
  EXPECT_FALSE(module_matches("lm_head", "lm_head_extra"));
}

TEST(ProgressBar, RendersBytesRateAndEta) {
  EXPECT_EQ(ProgressBar::render("loading", 500'000'000, 1'000'000'000, 1.0),
            "loading [############            ]  50%  500.0 MB / 1.00 GB  500 MB/s  ETA 1 s");
  EXPECT_EQ(ProgressBar::render("loading", 1'000'000'000, 1'000'000'000, 2.0),
            "loading [########################] 100%  1.00 GB / 1.00 GB  500 MB/s  ETA done in 2.0 s");
}

}  // namespace
}  // namespace fp4serve
