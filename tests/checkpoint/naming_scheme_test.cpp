// Naming tables: pairs written out from the published names (DeepSeek's
// model.safetensors.index.json, transformers' modeling_deepseek_v4.py, ModelOpt's NVFP4
// export of DeepSeek-V4-Pro), and a round trip of every tensor of a tiny config per scheme.
#include "checkpoint/naming_scheme.h"

#include <gtest/gtest.h>

#include <set>

#include "base/error.h"
#include "checkpoint/expected_tensors.h"
#include "checkpoint/model_config_json.h"
#include "checkpoint/test_model.h"

namespace fp4serve {
namespace {

struct Pair {
  TensorRole role;
  const char* canonical;
  const char* suffix;
  const char* stored;
};

void expect_pairs(NamingScheme scheme, const std::vector<Pair>& pairs) {
  for (const Pair& p : pairs) {
    SCOPED_TRACE(p.stored);
    auto mapped = to_canonical(scheme, p.stored);
    ASSERT_TRUE(mapped.has_value());
    EXPECT_EQ(mapped->role, p.role);
    EXPECT_EQ(mapped->canonical, p.canonical);
    EXPECT_EQ(mapped->suffix, p.suffix);
    EXPECT_EQ(to_stored(scheme, p.role, p.canonical, p.suffix), p.stored);
  }
}

constexpr auto T = TensorRole::kTensor;
constexpr auto W = TensorRole::kLinearWeight;
constexpr auto S = TensorRole::kBlockScale;
constexpr auto G = TensorRole::kGlobalScale;
constexpr auto I = TensorRole::kInputScale;

TEST(NamingScheme, DeepSeekNative) {
  expect_pairs(NamingScheme::kDeepSeekNative,
               {{T, "embed.weight", "", "embed.weight"},
                {W, "head", "weight", "head.weight"},
                {T, "hc_head_fn", "", "hc_head_fn"},
                {W, "layers.0.attn.wq_a", "weight", "layers.0.attn.wq_a.weight"},
                {S, "layers.0.attn.wq_a", "scale", "layers.0.attn.wq_a.scale"},
                {T, "layers.12.attn.kv_norm.weight", "", "layers.12.attn.kv_norm.weight"},
                {T, "layers.2.attn.compressor.ape", "", "layers.2.attn.compressor.ape"},
                {W, "layers.2.attn.indexer.compressor.wgate", "weight", "layers.2.attn.indexer.compressor.wgate.weight"},
                {T, "layers.0.ffn.gate.tid2eid", "", "layers.0.ffn.gate.tid2eid"},
                {T, "layers.5.ffn.gate.bias", "", "layers.5.ffn.gate.bias"},
                {W, "layers.5.ffn.experts.255.w2", "weight", "layers.5.ffn.experts.255.w2.weight"},
                {S, "layers.5.ffn.experts.255.w2", "scale", "layers.5.ffn.experts.255.w2.scale"},
                {T, "layers.7.hc_ffn_scale", "", "layers.7.hc_ffn_scale"},
                {W, "mtp.0.e_proj", "weight", "mtp.0.e_proj.weight"},
                {T, "mtp.0.hc_head_base", "", "mtp.0.hc_head_base"},
                {W, "mtp.0.ffn.experts.3.w1", "weight", "mtp.0.ffn.experts.3.w1.weight"}});
}

TEST(NamingScheme, TransformersInMemoryAndModelOptPerExpert) {
  // transformers' name mapping and ModelOpt's export of DeepSeek-V4-Pro.
  expect_pairs(NamingScheme::kTransformers,
               {{T, "embed.weight", "", "model.embed_tokens.weight"},
                {W, "head", "weight", "lm_head.weight"},
                {T, "norm.weight", "", "model.norm.weight"},
                {T, "hc_head_scale", "", "model.hc_head.hc_scale"},
                {T, "layers.3.attn_norm.weight", "", "model.layers.3.input_layernorm.weight"},
                {T, "layers.3.ffn_norm.weight", "", "model.layers.3.post_attention_layernorm.weight"},
                {T, "layers.3.hc_attn_fn", "", "model.layers.3.attn_hc.fn"},
                {T, "layers.3.hc_ffn_base", "", "model.layers.3.ffn_hc.base"},
                {T, "layers.3.attn.attn_sink", "", "model.layers.3.self_attn.sinks"},
                {W, "layers.3.attn.wq_a", "weight", "model.layers.3.self_attn.q_a_proj.weight"},
                {S, "layers.3.attn.wq_a", "weight_scale", "model.layers.3.self_attn.q_a_proj.weight_scale"},
                {G, "layers.3.attn.wq_a", "weight_scale_2", "model.layers.3.self_attn.q_a_proj.weight_scale_2"},
                {I, "layers.3.attn.wq_a", "input_scale", "model.layers.3.self_attn.q_a_proj.input_scale"},
                {S, "layers.3.attn.wq_b", "weight_scale_inv", "model.layers.3.self_attn.q_b_proj.weight_scale_inv"},
                {T, "layers.3.attn.q_norm.weight", "", "model.layers.3.self_attn.q_a_norm.weight"},
                {W, "layers.3.attn.wkv", "weight", "model.layers.3.self_attn.kv_proj.weight"},
                {T, "layers.3.attn.kv_norm.weight", "", "model.layers.3.self_attn.kv_norm.weight"},
                {W, "layers.3.attn.wo_a", "weight", "model.layers.3.self_attn.o_a_proj.weight"},
                {W, "layers.3.attn.wo_b", "weight", "model.layers.3.self_attn.o_b_proj.weight"},
                {W, "layers.3.attn.compressor.wkv", "weight", "model.layers.3.self_attn.compressor.kv_proj.weight"},
                {W, "layers.3.attn.compressor.wgate", "weight", "model.layers.3.self_attn.compressor.gate_proj.weight"},
                {T, "layers.3.attn.compressor.ape", "", "model.layers.3.self_attn.compressor.position_bias"},
                {T, "layers.3.attn.compressor.norm.weight", "", "model.layers.3.self_attn.compressor.kv_norm.weight"},
                {W, "layers.3.attn.indexer.wq_b", "weight", "model.layers.3.self_attn.compressor.indexer.q_b_proj.weight"},
                {W, "layers.3.attn.indexer.weights_proj", "weight",
                 "model.layers.3.self_attn.compressor.indexer.scorer.weights_proj.weight"},
                {W, "layers.3.attn.indexer.compressor.wkv", "weight",
                 "model.layers.3.self_attn.compressor.indexer.kv_proj.weight"},
                {T, "layers.3.attn.indexer.compressor.ape", "",
                 "model.layers.3.self_attn.compressor.indexer.position_bias"},
                {T, "layers.3.attn.indexer.compressor.norm.weight", "",
                 "model.layers.3.self_attn.compressor.indexer.kv_norm.weight"},
                {W, "layers.3.ffn.gate", "weight", "model.layers.3.mlp.gate.weight"},
                {T, "layers.3.ffn.gate.bias", "", "model.layers.3.mlp.gate.e_score_correction_bias"},
                {T, "layers.0.ffn.gate.tid2eid", "", "model.layers.0.mlp.gate.tid2eid"},
                {W, "layers.3.ffn.shared_experts.w1", "weight", "model.layers.3.mlp.shared_experts.gate_proj.weight"},
                {W, "layers.3.ffn.shared_experts.w2", "weight", "model.layers.3.mlp.shared_experts.down_proj.weight"},
                {W, "layers.3.ffn.shared_experts.w3", "weight", "model.layers.3.mlp.shared_experts.up_proj.weight"},
                {W, "layers.3.ffn.experts.9.w1", "weight", "model.layers.3.mlp.experts.9.gate_proj.weight"},
                {G, "layers.3.ffn.experts.9.w3", "weight_scale_2", "model.layers.3.mlp.experts.9.up_proj.weight_scale_2"},
                {S, "layers.3.ffn.experts.9.w2", "weight_scale", "model.layers.3.mlp.experts.9.down_proj.weight_scale"},
                {W, "mtp.0.h_proj", "weight", "mtp.0.h_proj.weight"}});
  auto fused = to_canonical(NamingScheme::kTransformers, "model.layers.4.mlp.experts.gate_up_proj");
  ASSERT_TRUE(fused.has_value());
  EXPECT_EQ(fused->role, TensorRole::kFusedGateUp);
  EXPECT_EQ(fused->canonical, "layers.4.ffn.experts");
  auto down = to_canonical(NamingScheme::kTransformers, "model.layers.4.mlp.experts.down_proj");
  ASSERT_TRUE(down.has_value());
  EXPECT_EQ(down->role, TensorRole::kFusedDown);
  EXPECT_EQ(to_stored(NamingScheme::kTransformers, TensorRole::kFusedGateUp, "layers.4.ffn.experts"),
            "model.layers.4.mlp.experts.gate_up_proj");
}

TEST(NamingScheme, TransformersSaved) {
  // What save_pretrained writes (observed with transformers 5.17, see tools/make_transformers_saved_fixture.py).
  expect_pairs(NamingScheme::kTransformersSaved,
               {{T, "embed.weight", "", "model.embed_tokens.weight"},
                {W, "head", "weight", "head.weight"},
                {T, "norm.weight", "", "model.norm.weight"},
                {T, "hc_head_fn", "", "model.hc_head.hc_fn"},
                {T, "layers.1.attn.kv_norm.weight", "", "model.layers.1.attn.norm.weight"},
                {T, "layers.1.attn.compressor.norm.weight", "", "model.layers.1.attn.compressor.norm.weight"},
                {W, "layers.1.attn.wq_a", "weight", "model.layers.1.attn.wq_a.weight"},
                {T, "layers.1.attn.attn_sink", "", "model.layers.1.attn.attn_sink"},
                {T, "layers.1.hc_attn_fn", "", "model.layers.1.hc_attn_fn"},
                {W, "layers.1.ffn.experts.2.w3", "weight", "model.layers.1.ffn.experts.2.w3.weight"},
                {T, "layers.1.ffn.gate.bias", "", "model.layers.1.ffn.gate.bias"}});
  // The bogus rename of the field report must not happen: head stays head, never lm_lm_head.
  EXPECT_FALSE(to_canonical(NamingScheme::kTransformersSaved, "lm_head.weight").has_value());
  EXPECT_FALSE(to_canonical(NamingScheme::kTransformersSaved, "model.layers.1.attn.kv_norm.weight").has_value());
}

TEST(NamingScheme, UnknownNamesAreNotMapped) {
  for (NamingScheme scheme : kAllNamingSchemes) {
    EXPECT_FALSE(to_canonical(scheme, "layers.0.attn.wq_c.weight").has_value());
    EXPECT_FALSE(to_canonical(scheme, "model.layers.01.self_attn.q_a_proj.weight").has_value());
    EXPECT_FALSE(to_canonical(scheme, "").has_value());
    EXPECT_FALSE(to_canonical(scheme, "layers..attn.wq_a.weight").has_value());
  }
  EXPECT_THROW(to_stored(NamingScheme::kDeepSeekNative, TensorRole::kFusedGateUp, "layers.0.ffn.experts"), Error);
}

// Every tensor a config implies maps to a distinct stored name in every scheme and back.
TEST(NamingScheme, EveryTensorOfTinyConfigRoundTripsInEveryScheme) {
  const ExpectedTensors expected = expected_tensors(tiny_test_config());
  for (NamingScheme scheme : kAllNamingSchemes) {
    SCOPED_TRACE(std::string(naming_scheme_name(scheme)));
    std::set<std::string> stored_names;
    size_t count = 0;
    for (const auto& t : expected.tensors) {
      const std::string stored = to_stored(scheme, TensorRole::kTensor, t.name);
      stored_names.insert(stored);
      ++count;
      auto back = to_canonical(scheme, stored);
      ASSERT_TRUE(back.has_value()) << stored;
      EXPECT_EQ(back->role, TensorRole::kTensor);
      EXPECT_EQ(back->canonical, t.name);
    }
    const std::pair<const char*, TensorRole> suffixes[] = {{"weight", W}, {"scale", S}, {"weight_scale_inv", S},
                                                           {"weight_scale", S}, {"weight_scale_2", G},
                                                           {"input_scale", I}};
    for (const auto& l : expected.linears) {
      for (const auto& [suffix, role] : suffixes) {
        const std::string stored = to_stored(scheme, role, l.name, suffix);
        stored_names.insert(stored);
        ++count;
        auto back = to_canonical(scheme, stored);
        ASSERT_TRUE(back.has_value()) << stored;
        EXPECT_EQ(back->role, role);
        EXPECT_EQ(back->canonical, l.name);
        EXPECT_EQ(back->suffix, suffix);
      }
    }
    EXPECT_EQ(stored_names.size(), count) << "two canonical names share a stored name";
  }
}

}  // namespace
}  // namespace fp4serve
