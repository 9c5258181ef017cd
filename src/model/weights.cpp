#include "model/weights.h"

#include "base/error.h"
#include "formats/number_formats.h"

namespace fp4serve {
namespace {

class Resolver {
 public:
  Resolver(const ModelConfig& config, const LinearMap& linears, const TensorMap& tensors, const ResolveOptions& options)
      : linears_(linears), tensors_(tensors), cfg_(config), options_(options) {}

  const TensorView& tensor(const std::string& name) const {
    auto it = tensors_.find(name);
    FP4SERVE_CHECK(it != tensors_.end(), "checkpoint has no tensor {} (the model needs it)", name);
    return it->second;
  }

  const LinearWeight* linear(const std::string& name, int64_t out, int64_t in) const {
    auto it = linears_.find(name);
    FP4SERVE_CHECK(it != linears_.end(), "checkpoint has no projection {} (the model needs it)", name);
    const LinearWeight& w = it->second;
    FP4SERVE_CHECK(w.out_features == out && w.in_features == in, "{}: projection is [{}, {}], the config implies [{}, {}]",
                   name, w.out_features, w.in_features, out, in);
    return &w;
  }

  std::vector<float> floats(const std::string& name, const std::vector<int64_t>& shape) const {
    const TensorView& t = tensor(name);
    FP4SERVE_CHECK(t.shape == shape, "{}: shape {}, the config implies {}", name, shape_string(t.shape), shape_string(shape));
    std::vector<float> out(static_cast<size_t>(t.numel()));
    for (size_t i = 0; i < out.size(); ++i) {
      switch (t.dtype) {
        case DType::F32: out[i] = t.as<float>()[i]; break;
        case DType::BF16: out[i] = decode_bf16(t.as<uint16_t>()[i]); break;
        case DType::F16: out[i] = decode_f16(t.as<uint16_t>()[i]); break;
        default: fail("{}: dtype {} where a floating-point tensor is expected", name, dtype_name(t.dtype));
      }
    }
    return out;
  }

  // A 2-D float tensor (mHC fn) run through the linear op.
  LinearWeight tensor_as_linear(const std::string& name, int64_t rows, int64_t cols) const {
    const TensorView& t = tensor(name);
    FP4SERVE_CHECK(t.shape == std::vector<int64_t>({rows, cols}), "{}: shape {}, the config implies [{}, {}]", name,
                   shape_string(t.shape), rows, cols);
    LinearWeight w;
    switch (t.dtype) {
      case DType::F32: w.encoding = WeightEncoding::kF32; break;
      case DType::BF16: w.encoding = WeightEncoding::kBF16; break;
      case DType::F16: w.encoding = WeightEncoding::kF16; break;
      default: fail("{}: dtype {} where a floating-point tensor is expected", name, dtype_name(t.dtype));
    }
    w.out_features = rows;
    w.in_features = cols;
    w.weight = t;
    w.name = name;
    return w;
  }

  HyperConnectionWeights hyper_connection(const std::string& fn, const std::string& base, const std::string& scale,
                                          int64_t rows, int64_t scales) const {
    HyperConnectionWeights h;
    h.fn = tensor_as_linear(fn, rows, cfg_.hc_mult * cfg_.hidden_size);
    h.base = floats(base, {rows});
    h.scale = floats(scale, {scales});
    return h;
  }

  CompressorWeights compressor(const std::string& p, int64_t ratio, int64_t dim) const {
    CompressorWeights c;
    c.ratio = ratio;
    c.dim = dim;
    c.overlap = ratio == 4;
    c.wkv = linear(p + "wkv", c.coff() * dim, cfg_.hidden_size);
    c.wgate = linear(p + "wgate", c.coff() * dim, cfg_.hidden_size);
    c.ape = floats(p + "ape", {ratio, c.coff() * dim});
    c.norm = floats(p + "norm.weight", {dim});
    return c;
  }

  BlockWeights block(const std::string& p, int64_t ratio, bool hash) const {
    const int64_t D = cfg_.hidden_size, H = cfg_.num_heads, hd = cfg_.head_dim, ql = cfg_.q_lora_rank;
    const int64_t G = cfg_.o_groups, R = cfg_.o_lora_rank, I = cfg_.moe_intermediate_size, E = cfg_.n_routed_experts;
    const int64_t mix = (2 + cfg_.hc_mult) * cfg_.hc_mult;
    BlockWeights b;
    b.attn_norm = floats(p + "attn_norm.weight", {D});
    b.ffn_norm = floats(p + "ffn_norm.weight", {D});
    b.hc_attn = hyper_connection(p + "hc_attn_fn", p + "hc_attn_base", p + "hc_attn_scale", mix, 3);
    b.hc_ffn = hyper_connection(p + "hc_ffn_fn", p + "hc_ffn_base", p + "hc_ffn_scale", mix, 3);

    AttentionWeights& a = b.attn;
    a.ratio = ratio;
    a.wq_a = linear(p + "attn.wq_a", ql, D);
    a.q_norm = floats(p + "attn.q_norm.weight", {ql});
    a.wq_b = linear(p + "attn.wq_b", H * hd, ql);
    a.wkv = linear(p + "attn.wkv", hd, D);
    a.kv_norm = floats(p + "attn.kv_norm.weight", {hd});
    a.wo_a = linear(p + "attn.wo_a", G * R, H * hd / G);
    a.wo_b = linear(p + "attn.wo_b", D, G * R);
    a.attn_sink = floats(p + "attn.attn_sink", {H});
    if (ratio > 0) a.compressor = compressor(p + "attn.compressor.", ratio, hd);
    if (ratio == 4) {
      IndexerWeights ix;
      ix.wq_b = linear(p + "attn.indexer.wq_b", cfg_.index_n_heads * cfg_.index_head_dim, ql);
      ix.weights_proj = linear(p + "attn.indexer.weights_proj", cfg_.index_n_heads, D);
      ix.compressor = compressor(p + "attn.indexer.compressor.", 4, cfg_.index_head_dim);
      a.indexer = std::move(ix);
    }

    MoeWeights& m = b.ffn;
    m.hash = hash;
    m.gate = linear(p + "ffn.gate", E, D);
    if (hash) {
      const TensorView& t = tensor(p + "ffn.gate.tid2eid");
      const std::vector<int64_t> want{cfg_.vocab_size, cfg_.experts_per_token};
      FP4SERVE_CHECK(t.shape == want, "{}ffn.gate.tid2eid: shape {}, expected {}", p, shape_string(t.shape), shape_string(want));
      FP4SERVE_CHECK(t.dtype == DType::I64 || t.dtype == DType::I32, "{}ffn.gate.tid2eid: dtype {}, expected I64 or I32", p,
                     dtype_name(t.dtype));
      m.tid2eid.resize(static_cast<size_t>(t.numel()));
      for (size_t i = 0; i < m.tid2eid.size(); ++i) {
        const int64_t e = t.dtype == DType::I64 ? t.as<int64_t>()[i] : t.as<int32_t>()[i];
        FP4SERVE_CHECK(e >= 0 && e < E, "{}ffn.gate.tid2eid: entry {} is expert {}, outside [0, {})", p, i, e, E);
        m.tid2eid[i] = static_cast<int32_t>(e);
      }
    } else {
      m.bias = floats(p + "ffn.gate.bias", {E});
    }
    for (int64_t e = 0; e < E; ++e) {
      const std::string q = p + "ffn.experts." + std::to_string(e) + ".";
      if (options_.absent_experts && !linears_.count(q + "w1") && !linears_.count(q + "w2") && !linears_.count(q + "w3")) {
        auto it = options_.absent_experts->find(p);
        FP4SERVE_CHECK(it != options_.absent_experts->end(), "checkpoint has no projection {}w1 (the model needs it)", q);
        m.experts.push_back(it->second);
        m.absent.resize(static_cast<size_t>(E), 0);
        m.absent[static_cast<size_t>(e)] = 1;
        continue;
      }
      m.experts.push_back({linear(q + "w1", I, D), linear(q + "w2", D, I), linear(q + "w3", I, D)});
    }
    const std::string s = p + "ffn.shared_experts.";
    const int64_t Is = options_.shared_intermediate >= 0 ? options_.shared_intermediate : I;
    m.shared = {linear(s + "w1", Is, D), linear(s + "w2", D, Is), linear(s + "w3", Is, D)};
    return b;
  }

  DsparkWeights dspark() const {
    const DraftConfig& d = cfg_.draft;
    const int64_t D = cfg_.hidden_size, V = cfg_.vocab_size, r = d.markov_rank, S = d.num_stages;
    const int64_t taps = static_cast<int64_t>(d.target_layer_ids.size());
    FP4SERVE_CHECK(S >= 1 && taps >= 1, "config: a DSpark draft with {} stages and {} target layers", S, taps);
    for (int64_t id : d.target_layer_ids)
      FP4SERVE_CHECK(id >= 0 && id < cfg_.num_layers, "config: dspark_target_layer_ids holds {}, outside the {} main layers", id,
                     cfg_.num_layers);
    FP4SERVE_CHECK(d.block_size >= 1, "config: dspark_block_size is {}, must be positive", d.block_size);
    FP4SERVE_CHECK(d.noise_token_id >= 0 && d.noise_token_id < V, "config: dspark_noise_token_id {} outside the vocabulary [0, {})",
                   d.noise_token_id, V);
    DsparkWeights w;
    w.main_proj = linear("mtp.0.main_proj", D, taps * D);
    w.main_norm = floats("mtp.0.main_norm.weight", {D});
    for (int64_t s = 0; s < S; ++s) {
      const int64_t ratio = cfg_.compress_ratio(cfg_.num_layers + s);
      FP4SERVE_CHECK(ratio == 0, "config: compress_ratios gives DSpark stage {} ratio {}; the draft attends a sliding window only",
                     s, ratio);
      w.stages.push_back(block("mtp." + std::to_string(s) + ".", 0, false));
    }
    const std::string last = "mtp." + std::to_string(S - 1) + ".";
    w.norm = floats(last + "norm.weight", {D});
    w.hc_head = hyper_connection(last + "hc_head_fn", last + "hc_head_base", last + "hc_head_scale", cfg_.hc_mult, 1);
    if (d.has_markov_head) {
      w.markov_w1 = tensor(last + "markov_head.markov_w1.weight");
      FP4SERVE_CHECK(w.markov_w1.shape == std::vector<int64_t>({V, r}), "{}markov_head.markov_w1.weight: shape {}, expected [{}, {}]",
                     last, shape_string(w.markov_w1.shape), V, r);
      FP4SERVE_CHECK(w.markov_w1.dtype == DType::BF16 || w.markov_w1.dtype == DType::F32 || w.markov_w1.dtype == DType::F16,
                     "{}markov_head.markov_w1.weight: dtype {}, expected BF16, F16 or F32", last, dtype_name(w.markov_w1.dtype));
      w.markov_w2 = linear(last + "markov_head.markov_w2", V, r);
    }
    if (d.has_confidence_head) w.confidence = linear(last + "confidence_head.proj", 1, D + (d.has_markov_head ? r : 0));
    return w;
  }

 private:
  const LinearMap& linears_;
  const TensorMap& tensors_;
  const ModelConfig& cfg_;
  const ResolveOptions& options_;
};

}  // namespace

void validate_config(const ModelConfig& c) {
  auto positive = [](int64_t v, const char* field) { FP4SERVE_CHECK(v > 0, "config: {} is {}, must be positive", field, v); };
  positive(c.vocab_size, "vocab_size");
  positive(c.hidden_size, "hidden_size");
  positive(c.num_layers, "num_hidden_layers");
  positive(c.num_heads, "num_attention_heads");
  positive(c.head_dim, "head_dim");
  positive(c.rope_head_dim, "qk_rope_head_dim");
  positive(c.q_lora_rank, "q_lora_rank");
  positive(c.o_groups, "o_groups");
  positive(c.o_lora_rank, "o_lora_rank");
  positive(c.sliding_window, "sliding_window");
  positive(c.n_routed_experts, "n_routed_experts");
  positive(c.experts_per_token, "num_experts_per_tok");
  positive(c.moe_intermediate_size, "moe_intermediate_size");
  positive(c.hc_mult, "hc_mult");
  FP4SERVE_CHECK(c.hc_mult <= 16, "config: hc_mult {} is above the supported 16 streams", c.hc_mult);
  positive(c.hc_sinkhorn_iters, "hc_sinkhorn_iters");
  FP4SERVE_CHECK(c.rope_head_dim % 2 == 0 && c.rope_head_dim <= c.head_dim && c.rope_head_dim <= 512,
                 "config: qk_rope_head_dim {} must be even, <= 512 and <= head_dim {}", c.rope_head_dim, c.head_dim);
  FP4SERVE_CHECK(c.num_heads % c.o_groups == 0, "config: num_attention_heads {} is not a multiple of o_groups {}", c.num_heads,
                 c.o_groups);
  FP4SERVE_CHECK(c.experts_per_token <= c.n_routed_experts, "config: num_experts_per_tok {} > n_routed_experts {}",
                 c.experts_per_token, c.n_routed_experts);
  FP4SERVE_CHECK(c.n_shared_experts == 1, "config: n_shared_experts is {}; DeepSeek-V4 has exactly one", c.n_shared_experts);
  FP4SERVE_CHECK(static_cast<int64_t>(c.compress_ratios.size()) >= c.num_layers + c.num_mtp_layers,
                 "config: compress_ratios has {} entries for {} layers + {} MTP layers", c.compress_ratios.size(), c.num_layers,
                 c.num_mtp_layers);
  bool any_csa = false;
  for (int64_t r : c.compress_ratios) {
    FP4SERVE_CHECK(r >= 0, "config: negative compress ratio {}", r);
    any_csa |= r == 4;
  }
  if (any_csa) {
    positive(c.index_n_heads, "index_n_heads");
    positive(c.index_topk, "index_topk");
    // Equal sizes rope every indexer dim (DeepSeek's reference and transformers run that too).
    FP4SERVE_CHECK(c.index_head_dim >= c.rope_head_dim && (c.index_head_dim & (c.index_head_dim - 1)) == 0,
                   "config: index_head_dim {} must be a power of two, at least qk_rope_head_dim", c.index_head_dim);
  }
}

ModelWeights resolve_weights(const ModelConfig& cfg, const LinearMap& linears, const TensorMap& tensors,
                             const ResolveOptions& options) {
  validate_config(cfg);
  Resolver r(cfg, linears, tensors, options);
  const int64_t embed_rows = options.embed_rows >= 0 ? options.embed_rows : cfg.vocab_size;
  const int64_t head_rows = options.head_rows >= 0 ? options.head_rows : cfg.vocab_size;
  ModelWeights w;
  w.embed = r.tensor("embed.weight");
  FP4SERVE_CHECK(w.embed.shape == std::vector<int64_t>({embed_rows, cfg.hidden_size}), "embed.weight: shape {}, expected [{}, {}]",
                 shape_string(w.embed.shape), embed_rows, cfg.hidden_size);
  FP4SERVE_CHECK(w.embed.dtype == DType::BF16 || w.embed.dtype == DType::F32 || w.embed.dtype == DType::F16,
                 "embed.weight: dtype {}, expected BF16, F16 or F32", dtype_name(w.embed.dtype));
  w.head = r.linear("head", head_rows, cfg.hidden_size);
  w.norm = r.floats("norm.weight", {cfg.hidden_size});
  w.hc_head = r.hyper_connection("hc_head_fn", "hc_head_base", "hc_head_scale", cfg.hc_mult, 1);
  for (int64_t i = 0; i < cfg.num_layers; ++i)
    w.layers.push_back(r.block("layers." + std::to_string(i) + ".", cfg.compress_ratio(i), cfg.is_hash_layer(i)));
  for (int64_t j = 0; j < cfg.num_mtp_layers; ++j) {
    const std::string p = "mtp." + std::to_string(j) + ".";
    MtpWeights m;
    m.e_proj = r.linear(p + "e_proj", cfg.hidden_size, cfg.hidden_size);
    m.h_proj = r.linear(p + "h_proj", cfg.hidden_size, cfg.hidden_size);
    m.enorm = r.floats(p + "enorm.weight", {cfg.hidden_size});
    m.hnorm = r.floats(p + "hnorm.weight", {cfg.hidden_size});
    m.norm = r.floats(p + "norm.weight", {cfg.hidden_size});
    m.hc_head = r.hyper_connection(p + "hc_head_fn", p + "hc_head_base", p + "hc_head_scale", cfg.hc_mult, 1);
    m.block = r.block(p, cfg.compress_ratio(cfg.num_layers + j), false);
    w.mtp.push_back(std::move(m));
  }
  if (cfg.draft.kind == DraftKind::kDSpark) w.dspark = r.dspark();
  return w;
}

}  // namespace fp4serve
