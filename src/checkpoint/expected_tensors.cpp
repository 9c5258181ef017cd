#include "checkpoint/expected_tensors.h"

#include <fmt/format.h>

namespace fp4serve {
namespace {

class Builder {
 public:
  explicit Builder(const ModelConfig& c) : c_(c) {}

  void linear(const std::string& name, int64_t out, int64_t in, LinearGroup group, const char* formula) {
    result.linears.push_back(ExpectedLinear{name, out, in, group, formula});
  }
  void tensor(const std::string& name, std::vector<int64_t> shape, NativeDType dtype, const char* formula) {
    const TensorKind kind = dtype == NativeDType::kI64 ? TensorKind::kIndex : TensorKind::kFloat;
    result.tensors.push_back(ExpectedTensor{name, std::move(shape), kind, dtype, formula});
  }

  // One transformer block: layers.N. or mtp.J. (ratio r, hash routing or not).
  void block(const std::string& p, int64_t r, bool hash) {
    const int64_t D = c_.hidden_size, hc = c_.hc_mult, H = c_.num_heads, hd = c_.head_dim;
    const int64_t q = c_.q_lora_rank, G = c_.o_groups, R = c_.o_lora_rank;
    const int64_t E = c_.n_routed_experts, I = c_.moe_intermediate_size;
    tensor(p + "attn_norm.weight", {D}, NativeDType::kBF16, "[hidden_size]");
    tensor(p + "ffn_norm.weight", {D}, NativeDType::kBF16, "[hidden_size]");
    for (const char* site : {"attn", "ffn"}) {
      tensor(fmt::format("{}hc_{}_fn", p, site), {(2 + hc) * hc, hc * D}, NativeDType::kF32,
             "[(2 + hc_mult) * hc_mult, hc_mult * hidden_size]");
      tensor(fmt::format("{}hc_{}_base", p, site), {(2 + hc) * hc}, NativeDType::kF32, "[(2 + hc_mult) * hc_mult]");
      tensor(fmt::format("{}hc_{}_scale", p, site), {3}, NativeDType::kF32, "[3]");
    }
    tensor(p + "attn.attn_sink", {H}, NativeDType::kF32, "[num_attention_heads]");
    linear(p + "attn.wq_a", q, D, LinearGroup::kAttention, "[q_lora_rank, hidden_size]");
    tensor(p + "attn.q_norm.weight", {q}, NativeDType::kBF16, "[q_lora_rank]");
    linear(p + "attn.wq_b", H * hd, q, LinearGroup::kAttention, "[num_attention_heads * head_dim, q_lora_rank]");
    linear(p + "attn.wkv", hd, D, LinearGroup::kAttention, "[head_dim, hidden_size]");
    tensor(p + "attn.kv_norm.weight", {hd}, NativeDType::kBF16, "[head_dim]");
    linear(p + "attn.wo_a", G * R, H * hd / G, LinearGroup::kAttention,
           "[o_groups * o_lora_rank, num_attention_heads * head_dim / o_groups]");
    linear(p + "attn.wo_b", D, G * R, LinearGroup::kAttention, "[hidden_size, o_groups * o_lora_rank]");
    if (r > 0) {
      const int64_t coff = r == 4 ? 2 : 1;
      compressor(p + "attn.compressor.", r, coff * hd, hd, D);
    }
    if (r == 4) {
      const int64_t nih = c_.index_n_heads, ihd = c_.index_head_dim;
      linear(p + "attn.indexer.wq_b", nih * ihd, q, LinearGroup::kAttention,
             "[index_n_heads * index_head_dim, q_lora_rank]");
      linear(p + "attn.indexer.weights_proj", nih, D, LinearGroup::kCompressor, "[index_n_heads, hidden_size]");
      compressor(p + "attn.indexer.compressor.", 4, 2 * ihd, ihd, D);
    }
    linear(p + "ffn.gate", E, D, LinearGroup::kRouter, "[n_routed_experts, hidden_size]");
    if (hash) {
      tensor(p + "ffn.gate.tid2eid", {c_.vocab_size, c_.experts_per_token}, NativeDType::kI64,
             "[vocab_size, num_experts_per_tok]");
    } else {
      tensor(p + "ffn.gate.bias", {E}, NativeDType::kF32, "[n_routed_experts]");
    }
    if (c_.n_shared_experts > 0) {
      linear(p + "ffn.shared_experts.w1", I, D, LinearGroup::kSharedExpert, "[moe_intermediate_size, hidden_size]");
      linear(p + "ffn.shared_experts.w2", D, I, LinearGroup::kSharedExpert, "[hidden_size, moe_intermediate_size]");
      linear(p + "ffn.shared_experts.w3", I, D, LinearGroup::kSharedExpert, "[moe_intermediate_size, hidden_size]");
    }
    for (int64_t e = 0; e < E; ++e) {
      const std::string x = fmt::format("{}ffn.experts.{}.", p, e);
      linear(x + "w1", I, D, LinearGroup::kRoutedExpert, "[moe_intermediate_size, hidden_size]");
      linear(x + "w2", D, I, LinearGroup::kRoutedExpert, "[hidden_size, moe_intermediate_size]");
      linear(x + "w3", I, D, LinearGroup::kRoutedExpert, "[moe_intermediate_size, hidden_size]");
    }
  }

  // coff = 2 (overlapping windows) for ratio 4, else 1; the indexer's compressor works at index_head_dim.
  void compressor(const std::string& p, int64_t r, int64_t width, int64_t dim, int64_t D) {
    const bool indexer = p.find("indexer") != std::string::npos;
    const char* projection = indexer ? "[2 * index_head_dim, hidden_size]" : "[coff * head_dim, hidden_size]";
    linear(p + "wkv", width, D, LinearGroup::kCompressor, projection);
    linear(p + "wgate", width, D, LinearGroup::kCompressor, projection);
    tensor(p + "ape", {r, width}, NativeDType::kF32,
           indexer ? "[4, 2 * index_head_dim]" : "[compress_ratio, coff * head_dim]");
    tensor(p + "norm.weight", {dim}, NativeDType::kBF16, indexer ? "[index_head_dim]" : "[head_dim]");
  }

  void hc_head(const std::string& p) {
    const int64_t hc = c_.hc_mult, D = c_.hidden_size;
    tensor(p + "hc_head_fn", {hc, hc * D}, NativeDType::kF32, "[hc_mult, hc_mult * hidden_size]");
    tensor(p + "hc_head_base", {hc}, NativeDType::kF32, "[hc_mult]");
    tensor(p + "hc_head_scale", {1}, NativeDType::kF32, "[1]");
  }

  void dspark_draft() {
    const DraftConfig& d = c_.draft;
    const int64_t D = c_.hidden_size, V = c_.vocab_size, r = d.markov_rank, S = d.num_stages;
    const int64_t taps = static_cast<int64_t>(d.target_layer_ids.size());
    const size_t first = result.linears.size();
    for (int64_t s = 0; s < S; ++s) {
      const std::string p = fmt::format("mtp.{}.", s);
      block(p, c_.compress_ratio(c_.num_layers + s), /*hash=*/false);
      if (s == 0) {
        linear(p + "main_proj", D, taps * D, LinearGroup::kMtpProjection,
               "[hidden_size, len(dspark_target_layer_ids) * hidden_size]");
        tensor(p + "main_norm.weight", {D}, NativeDType::kBF16, "[hidden_size]");
      }
      if (s == S - 1) {
        tensor(p + "norm.weight", {D}, NativeDType::kBF16, "[hidden_size]");
        hc_head(p);
        if (d.has_markov_head) {
          tensor(p + "markov_head.markov_w1.weight", {V, r}, NativeDType::kBF16, "[vocab_size, dspark_markov_rank]");
          linear(p + "markov_head.markov_w2", V, r, LinearGroup::kDraftHead, "[vocab_size, dspark_markov_rank]");
        }
        if (d.has_confidence_head)
          linear(p + "confidence_head.proj", 1, D + (d.has_markov_head ? r : 0), LinearGroup::kDraftHead,
                 "[1, hidden_size + dspark_markov_rank]");
      }
    }
    for (size_t i = first; i < result.linears.size(); ++i) result.linears[i].in_dspark_draft = true;
  }

  ExpectedTensors result;

 private:
  const ModelConfig& c_;
};

}  // namespace

ExpectedTensors expected_tensors(const ModelConfig& config) {
  Builder b(config);
  const int64_t D = config.hidden_size, V = config.vocab_size;
  b.tensor("embed.weight", {V, D}, NativeDType::kBF16, "[vocab_size, hidden_size]");
  b.linear("head", V, D, LinearGroup::kHead, "[vocab_size, hidden_size]");
  b.tensor("norm.weight", {D}, NativeDType::kBF16, "[hidden_size]");
  b.hc_head("");
  for (int64_t i = 0; i < config.num_layers; ++i)
    b.block(fmt::format("layers.{}.", i), config.compress_ratio(i), config.is_hash_layer(i));
  if (config.draft.kind == DraftKind::kDSpark) {
    b.dspark_draft();
    return std::move(b.result);
  }
  for (int64_t j = 0; j < config.num_mtp_layers; ++j) {
    const std::string p = fmt::format("mtp.{}.", j);
    b.block(p, config.compress_ratio(config.num_layers + j), /*hash=*/false);
    b.linear(p + "e_proj", D, D, LinearGroup::kMtpProjection, "[hidden_size, hidden_size]");
    b.linear(p + "h_proj", D, D, LinearGroup::kMtpProjection, "[hidden_size, hidden_size]");
    for (const char* norm : {"enorm.weight", "hnorm.weight", "norm.weight"})
      b.tensor(p + norm, {D}, NativeDType::kBF16, "[hidden_size]");
    b.hc_head(p);
  }
  return std::move(b.result);
}

}  // namespace fp4serve
