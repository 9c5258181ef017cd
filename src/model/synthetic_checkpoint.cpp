#include "model/synthetic_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "formats/number_formats.h"
#include "backend/cpu/thread_pool.h"

namespace fp4serve {
namespace {

uint64_t mix(uint64_t x) {  // splitmix64
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Fills bytes in parallel; `shape_byte` maps each random byte to a valid code.
template <typename Shape>
void fill_bytes(TensorView& t, uint64_t seed, Shape shape_byte) {
  auto* p = reinterpret_cast<uint8_t*>(mutable_data(t));
  const int64_t n = static_cast<int64_t>(t.nbytes);
  cpu::ThreadPool::global().parallel_for((n + 4095) / 4096, 1, [&](int64_t b, int64_t e) {
    for (int64_t blk = b; blk < e; ++blk) {
      uint64_t s = mix(seed ^ static_cast<uint64_t>(blk) * 0x632BE59BD9B4E019ull);
      for (int64_t i = blk * 4096; i < std::min(n, (blk + 1) * 4096); i += 8) {
        s = mix(s);
        for (int64_t j = 0; j < 8 && i + j < n; ++j) p[i + j] = shape_byte(static_cast<uint8_t>(s >> (8 * j)));
      }
    }
  });
}

class Maker {
 public:
  Maker(Checkpoint& c, uint64_t seed) : ckpt_(c), seed_(seed) {}

  // Small tensors: value = mean + std * u, u uniform in [-1, 1).
  void floats(const std::string& name, std::vector<int64_t> shape, float std, float mean = 0.0f) {
    TensorView t = make_owned_tensor(DType::F32, std::move(shape), name);
    auto* v = reinterpret_cast<float*>(mutable_data(t));
    uint64_t s = mix(seed_ ^ std::hash<std::string>{}(name));
    for (int64_t i = 0; i < t.numel(); ++i) {
      s = mix(s);
      v[i] = round_bf16(mean + std * (static_cast<float>(s >> 40) / static_cast<float>(1ull << 23) - 1.0f));
    }
    ckpt_.tensors[name] = t;
  }

  void bf16(const std::string& name, int64_t out, int64_t in) {
    LinearWeight w = base(name, WeightEncoding::kBF16, out, in);
    w.weight = make_owned_tensor(DType::BF16, {out, in}, name);
    // Random sign and mantissa, exponent giving magnitudes in [2^-8, 2^-6).
    fill_bytes(w.weight, next(), [](uint8_t b) { return b; });
    auto* h = reinterpret_cast<uint16_t*>(mutable_data(w.weight));
    for (int64_t i = 0; i < out * in; ++i) h[i] = static_cast<uint16_t>((h[i] & 0x807F) | ((119 + (h[i] >> 7 & 1)) << 7));
    ckpt_.linears[name] = w;
  }

  void fp8(const std::string& name, int64_t out, int64_t in) {
    LinearWeight w = base(name, WeightEncoding::kFP8Block, out, in);
    w.weight = make_owned_tensor(DType::F8_E4M3, {out, in}, name);
    fill_bytes(w.weight, next(), [](uint8_t b) { return static_cast<uint8_t>(b & 0xBF); });  // |v| < 2, never NaN
    w.scale = make_owned_tensor(DType::F8_E8M0, {(out + 127) / 128, (in + 127) / 128}, name + ".scale");
    const uint8_t e = static_cast<uint8_t>(127 - std::lround(std::log2(std::sqrt(static_cast<double>(in)))));
    fill_bytes(w.scale, next(), [e](uint8_t) { return e; });
    ckpt_.linears[name] = w;
  }

  void mxfp4(const std::string& name, int64_t out, int64_t in) {
    LinearWeight w = base(name, WeightEncoding::kMXFP4, out, in);
    w.weight = make_owned_tensor(DType::I8, {out, in / 2}, name);
    fill_bytes(w.weight, next(), [](uint8_t b) { return b; });
    w.scale = make_owned_tensor(DType::F8_E8M0, {out, in / 32}, name + ".scale");
    const uint8_t e = static_cast<uint8_t>(125 - std::lround(std::log2(std::sqrt(static_cast<double>(in)))));
    fill_bytes(w.scale, next(), [e](uint8_t) { return e; });
    ckpt_.linears[name] = w;
  }

 private:
  static LinearWeight base(const std::string& name, WeightEncoding e, int64_t out, int64_t in) {
    LinearWeight w;
    w.name = name;
    w.encoding = e;
    w.out_features = out;
    w.in_features = in;
    return w;
  }
  uint64_t next() { return seed_ = mix(seed_); }

  Checkpoint& ckpt_;
  uint64_t seed_;
};

}  // namespace

ModelConfig synthetic_config(const SyntheticShape& s) {
  const int64_t scale = 4096 / s.hidden;  // 1 at Flash size
  ModelConfig c;
  c.vocab_size = s.vocab;
  c.hidden_size = s.hidden;
  c.num_layers = s.layers;
  c.num_mtp_layers = 0;
  for (int64_t i = 0; i < s.layers; ++i) c.compress_ratios.push_back(i < 2 ? 0 : (i % 2 == 0 ? 4 : 128));
  c.num_heads = 64 / scale;
  c.head_dim = 512;
  c.rope_head_dim = 64;
  c.q_lora_rank = 1024 / scale;
  c.o_lora_rank = 1024 / scale;
  c.o_groups = 8;
  c.sliding_window = 128;
  c.yarn = {16.0, 65536, 32.0, 1.0};
  c.index_n_heads = 64 / scale;
  c.index_head_dim = 128;
  c.index_topk = 512;
  c.n_routed_experts = s.experts;
  c.n_shared_experts = 1;
  c.experts_per_token = std::min<int64_t>(6, s.experts);
  c.moe_intermediate_size = 2048 / scale;
  c.num_hash_layers = std::min<int64_t>(3, s.layers);
  c.routed_scaling_factor = 1.5;
  c.swiglu_limit = 10.0;
  c.hc_mult = 4;
  c.hc_sinkhorn_iters = 20;
  return c;
}

Checkpoint synthetic_checkpoint(const ModelConfig& c, uint64_t seed) {
  Checkpoint ckpt;
  ckpt.config = c;
  ckpt.layout = "synthetic";
  Maker m(ckpt, seed);
  const int64_t D = c.hidden_size, H = c.num_heads, hd = c.head_dim, I = c.moe_intermediate_size;
  const int64_t mix_rows = (2 + c.hc_mult) * c.hc_mult;
  m.floats("embed.weight", {c.vocab_size, D}, 1.0f);
  m.bf16("head", c.vocab_size, D);
  m.floats("norm.weight", {D}, 0.1f, 1.0f);
  m.floats("hc_head_fn", {c.hc_mult, c.hc_mult * D}, 0.02f);
  m.floats("hc_head_base", {c.hc_mult}, 0.1f);
  m.floats("hc_head_scale", {1}, 0.1f, 1.0f);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    const int64_t r = c.compress_ratio(i);
    for (const char* n : {"attn_norm.weight", "ffn_norm.weight"}) m.floats(p + n, {D}, 0.1f, 1.0f);
    for (const char* site : {"hc_attn", "hc_ffn"}) {
      m.floats(p + site + "_fn", {mix_rows, c.hc_mult * D}, 0.02f);
      m.floats(p + site + "_base", {mix_rows}, 0.1f);
      m.floats(p + site + "_scale", {3}, 0.1f, 1.0f);
    }
    m.floats(p + "attn.attn_sink", {H}, 1.0f);
    m.fp8(p + "attn.wq_a", c.q_lora_rank, D);
    m.floats(p + "attn.q_norm.weight", {c.q_lora_rank}, 0.1f, 1.0f);
    m.fp8(p + "attn.wq_b", H * hd, c.q_lora_rank);
    m.fp8(p + "attn.wkv", hd, D);
    m.floats(p + "attn.kv_norm.weight", {hd}, 0.1f, 1.0f);
    m.fp8(p + "attn.wo_a", c.o_groups * c.o_lora_rank, H * hd / c.o_groups);
    m.fp8(p + "attn.wo_b", D, c.o_groups * c.o_lora_rank);
    if (r > 0) {
      const int64_t coff = r == 4 ? 2 : 1;
      m.bf16(p + "attn.compressor.wkv", coff * hd, D);
      m.bf16(p + "attn.compressor.wgate", coff * hd, D);
      m.floats(p + "attn.compressor.ape", {r, coff * hd}, 0.1f);
      m.floats(p + "attn.compressor.norm.weight", {hd}, 0.1f, 1.0f);
    }
    if (r == 4) {
      const int64_t ihd = c.index_head_dim;
      m.fp8(p + "attn.indexer.wq_b", c.index_n_heads * ihd, c.q_lora_rank);
      m.bf16(p + "attn.indexer.weights_proj", c.index_n_heads, D);
      m.bf16(p + "attn.indexer.compressor.wkv", 2 * ihd, D);
      m.bf16(p + "attn.indexer.compressor.wgate", 2 * ihd, D);
      m.floats(p + "attn.indexer.compressor.ape", {4, 2 * ihd}, 0.1f);
      m.floats(p + "attn.indexer.compressor.norm.weight", {ihd}, 0.1f, 1.0f);
    }
    m.bf16(p + "ffn.gate", c.n_routed_experts, D);
    if (c.is_hash_layer(i)) {
      TensorView t = make_owned_tensor(DType::I64, {c.vocab_size, c.experts_per_token}, p + "ffn.gate.tid2eid");
      auto* ids = reinterpret_cast<int64_t*>(mutable_data(t));
      for (int64_t v = 0; v < c.vocab_size; ++v)
        for (int64_t j = 0; j < c.experts_per_token; ++j) ids[v * c.experts_per_token + j] = (v * 7 + j) % c.n_routed_experts;
      ckpt.tensors[p + "ffn.gate.tid2eid"] = t;
    } else {
      m.floats(p + "ffn.gate.bias", {c.n_routed_experts}, 0.01f);
    }
    for (int64_t e = 0; e < c.n_routed_experts; ++e) {
      const std::string q = p + "ffn.experts." + std::to_string(e) + ".";
      m.mxfp4(q + "w1", I, D);
      m.mxfp4(q + "w2", D, I);
      m.mxfp4(q + "w3", I, D);
    }
    m.fp8(p + "ffn.shared_experts.w1", I, D);
    m.fp8(p + "ffn.shared_experts.w2", D, I);
    m.fp8(p + "ffn.shared_experts.w3", I, D);
  }
  return ckpt;
}

}  // namespace fp4serve
