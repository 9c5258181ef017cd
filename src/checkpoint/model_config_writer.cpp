// Writers of config.json for the layouts fp4serve produces (quantize, make-test-model).
#include <nlohmann/json.hpp>
#include <set>

#include "base/error.h"
#include "checkpoint/model_config_json.h"

namespace fp4serve {
namespace {

using nlohmann::json;

// Fields spelled the same way in DeepSeek's and transformers' configs.
json common_fields(const ModelConfig& c) {
  json j;
  j["architectures"] = json::array({"DeepseekV4ForCausalLM"});
  j["model_type"] = "deepseek_v4";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["num_hidden_layers"] = c.num_layers;
  // DeepSeek's DSpark releases keep num_nextn_predict_layers 1 beside their dspark_* keys.
  j["num_nextn_predict_layers"] = c.draft.kind == DraftKind::kDSpark ? 1 : c.num_mtp_layers;
  if (c.draft.kind == DraftKind::kDSpark) {
    j["dspark_block_size"] = c.draft.block_size;
    j["dspark_noise_token_id"] = c.draft.noise_token_id;
    j["dspark_target_layer_ids"] = c.draft.target_layer_ids;
    j["dspark_markov_rank"] = c.draft.markov_rank;
  }
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = 1;
  j["head_dim"] = c.head_dim;
  j["q_lora_rank"] = c.q_lora_rank;
  j["o_lora_rank"] = c.o_lora_rank;
  j["o_groups"] = c.o_groups;
  j["sliding_window"] = c.sliding_window;
  j["rope_theta"] = c.rope_theta;
  j["compress_rope_theta"] = c.compress_rope_theta;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["index_n_heads"] = c.index_n_heads;
  j["index_head_dim"] = c.index_head_dim;
  j["index_topk"] = c.index_topk;
  j["n_routed_experts"] = c.n_routed_experts;
  j["n_shared_experts"] = c.n_shared_experts;
  j["num_experts_per_tok"] = c.experts_per_token;
  j["moe_intermediate_size"] = c.moe_intermediate_size;
  j["scoring_func"] = c.scoring_func;
  j["topk_method"] = "noaux_tc";
  j["norm_topk_prob"] = c.norm_topk_prob;
  j["routed_scaling_factor"] = c.routed_scaling_factor;
  j["swiglu_limit"] = c.swiglu_limit;
  j["hidden_act"] = "silu";
  j["hc_mult"] = c.hc_mult;
  j["hc_sinkhorn_iters"] = c.hc_sinkhorn_iters;
  j["hc_eps"] = c.hc_eps;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["bos_token_id"] = c.bos_token_id;
  j["eos_token_id"] = c.eos_token_id;
  j["tie_word_embeddings"] = false;
  j["attention_bias"] = false;
  return j;
}

json yarn_fields(const ModelConfig& c) {
  json y;
  y["factor"] = c.yarn.factor;
  y["original_max_position_embeddings"] = c.yarn.original_max_position;
  y["beta_fast"] = c.yarn.beta_fast;
  y["beta_slow"] = c.yarn.beta_slow;
  return y;
}

}  // namespace

json deepseek_style_config(const ModelConfig& c) {
  json j = common_fields(c);
  j["qk_rope_head_dim"] = c.rope_head_dim;
  j["compress_ratios"] = c.compress_ratios;
  j["num_hash_layers"] = c.num_hash_layers;
  if (c.yarn.factor != 1.0) {
    json y = yarn_fields(c);
    y["type"] = "yarn";
    j["rope_scaling"] = y;
  }
  j["torch_dtype"] = "bfloat16";
  return j;
}

json transformers_style_config(const ModelConfig& c) {
  json j = common_fields(c);
  std::set<int64_t> hca_rates;
  json layer_types = json::array();
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const int64_t r = c.compress_ratio(i);
    if (r == 0) {
      layer_types.push_back("sliding_attention");
    } else if (r == 4) {
      layer_types.push_back("compressed_sparse_attention");
    } else {
      layer_types.push_back("heavily_compressed_attention");
      hca_rates.insert(r);
    }
  }
  if (hca_rates.size() > 1)
    fail("transformers config: layers use {} different HCA ratios; layer_types can express only one", hca_rates.size());
  j["layer_types"] = layer_types;
  j["compress_rates"] = {{"compressed_sparse_attention", 4},
                         {"heavily_compressed_attention", hca_rates.empty() ? 128 : *hca_rates.begin()}};
  json mlp_layer_types = json::array();
  for (int64_t i = 0; i < c.num_layers; ++i) mlp_layer_types.push_back(c.is_hash_layer(i) ? "hash_moe" : "moe");
  j["mlp_layer_types"] = mlp_layer_types;
  const double partial = static_cast<double>(c.rope_head_dim) / static_cast<double>(c.head_dim);
  j["partial_rotary_factor"] = partial;
  json compress = {{"rope_theta", c.compress_rope_theta}, {"partial_rotary_factor", partial}};
  if (c.yarn.factor != 1.0) {
    compress.update(yarn_fields(c));
    compress["rope_type"] = "yarn";
    compress["attention_factor"] = 1.0;
  } else {
    compress["rope_type"] = "default";
  }
  j["rope_parameters"] = {
      {"main", {{"rope_type", "default"}, {"rope_theta", c.rope_theta}, {"partial_rotary_factor", partial}}},
      {"compress", compress}};
  j["dtype"] = "bfloat16";
  return j;
}

}  // namespace fp4serve
