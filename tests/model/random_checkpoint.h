// Header-only (test folders compile only *_test.cpp files).
// A tiny random DeepSeek-V4 checkpoint in memory (the tiny test shapes at hidden 128),
// for tests of the forward pass that need no files: every projection in BF16 or in
// the native encodings (FP8 block-128 + MXFP4 experts) or NVFP4.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "formats/number_formats.h"

namespace fp4serve::testing {

enum class RandomEncoding { kBF16, kNative, kNVFP4 };

namespace detail {

inline uint8_t e4m3_code(float v) { return encode_e4m3(std::clamp(v, -448.0f, 448.0f)); }

inline uint8_t e2m1_code(float v) { return encode_e2m1(std::clamp(v, -6.0f, 6.0f)); }

class Builder {
 public:
  Builder(Checkpoint& c, RandomEncoding enc, uint32_t seed) : ckpt_(c), enc_(enc), rng_(seed) {}

  std::vector<float> normal(int64_t n, float std, float mean = 0.0f) {
    std::normal_distribution<float> d(mean, std);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = round_bf16(d(rng_));
    return v;
  }

  void tensor(const std::string& name, std::vector<int64_t> shape, float std, float mean = 0.0f) {
    TensorView t = make_owned_tensor(DType::F32, shape, name);
    auto v = normal(t.numel(), std, mean);
    std::memcpy(mutable_data(t), v.data(), v.size() * sizeof(float));
    ckpt_.tensors[name] = t;
  }

  // kind: 0 plain BF16, 1 FP8-eligible, 2 routed expert.
  void linear(const std::string& name, int64_t out, int64_t in, int kind, float gain = 1.0f) {
    auto v = normal(out * in, gain / std::sqrt(static_cast<float>(in)));
    LinearWeight w;
    w.name = name;
    w.out_features = out;
    w.in_features = in;
    if (enc_ == RandomEncoding::kNative && kind == 1) {
      w.encoding = WeightEncoding::kFP8Block;
      w.weight = make_owned_tensor(DType::F8_E4M3, {out, in}, name);
      const int64_t nb = (out + 127) / 128, kb = (in + 127) / 128;
      w.scale = make_owned_tensor(DType::F8_E8M0, {nb, kb}, name + ".scale");
      for (int64_t i = 0; i < nb; ++i)
        for (int64_t j = 0; j < kb; ++j) {
          float amax = 1e-4f;
          for (int64_t n = i * 128; n < std::min(out, (i + 1) * 128); ++n)
            for (int64_t k = j * 128; k < std::min(in, (j + 1) * 128); ++k) amax = std::max(amax, std::fabs(v[n * in + k]));
          const float s = decode_e8m0(encode_e8m0_ceil(amax / 448.0f));
          reinterpret_cast<uint8_t*>(mutable_data(w.scale))[i * kb + j] = static_cast<uint8_t>(std::ilogb(s) + 127);
          for (int64_t n = i * 128; n < std::min(out, (i + 1) * 128); ++n)
            for (int64_t k = j * 128; k < std::min(in, (j + 1) * 128); ++k)
              reinterpret_cast<uint8_t*>(mutable_data(w.weight))[n * in + k] = e4m3_code(v[n * in + k] / s);
        }
    } else if ((enc_ == RandomEncoding::kNative && kind == 2) || (enc_ == RandomEncoding::kNVFP4 && kind != 0)) {
      const bool mx = enc_ == RandomEncoding::kNative;
      const int64_t block = mx ? 32 : 16;
      w.encoding = mx ? WeightEncoding::kMXFP4 : WeightEncoding::kNVFP4;
      w.weight = make_owned_tensor(mx ? DType::I8 : DType::U8, {out, in / 2}, name);
      w.scale = make_owned_tensor(mx ? DType::F8_E8M0 : DType::F8_E4M3, {out, in / block}, name + ".scale");
      float gs = 1.0f;
      if (!mx) {
        float amax = 0.0f;
        for (float x : v) amax = std::max(amax, std::fabs(x));
        gs = amax / 2688.0f;
        w.global_scale = gs;
      }
      auto* q = reinterpret_cast<uint8_t*>(mutable_data(w.weight));
      auto* sc = reinterpret_cast<uint8_t*>(mutable_data(w.scale));
      for (int64_t n = 0; n < out; ++n)
        for (int64_t b = 0; b < in / block; ++b) {
          float amax = 0.0f;
          for (int64_t k = b * block; k < (b + 1) * block; ++k) amax = std::max(amax, std::fabs(v[n * in + k]));
          float s;
          if (mx) {
            s = decode_e8m0(encode_e8m0_ceil(std::max(amax, 6.0f * 0x1p-126f) / 6.0f));
            sc[n * (in / block) + b] = static_cast<uint8_t>(std::ilogb(s) + 127);
          } else {
            const uint8_t code = e4m3_code(std::clamp(amax / (6.0f * gs), 0x1p-9f, 448.0f));
            sc[n * (in / block) + b] = code;
            s = decode_e4m3(code) * gs;
          }
          for (int64_t k = b * block; k < (b + 1) * block; ++k) {
            const uint8_t c = e2m1_code(v[n * in + k] / s);
            uint8_t& byte = q[n * (in / 2) + k / 2];
            byte = (k % 2 == 0) ? static_cast<uint8_t>((byte & 0xF0) | c) : static_cast<uint8_t>((byte & 0x0F) | (c << 4));
          }
        }
    } else {
      w.encoding = WeightEncoding::kBF16;
      w.weight = make_owned_tensor(DType::BF16, {out, in}, name);
      for (int64_t i = 0; i < out * in; ++i) reinterpret_cast<uint16_t*>(mutable_data(w.weight))[i] = encode_bf16(v[i]);
    }
    ckpt_.linears[name] = w;
  }

  void hc(const std::string& p, int64_t rows, int64_t width) {
    tensor(p + "_fn", {rows, width}, 0.02f);
    tensor(p + "_base", {rows}, 0.1f);
    tensor(p + "_scale", {rows == 4 ? 1 : 3}, 0.1f, 1.0f);
  }

  void block(const std::string& p, const ModelConfig& c, int64_t ratio, bool hash) {
    const int64_t D = c.hidden_size, H = c.num_heads, hd = c.head_dim, ql = c.q_lora_rank, I = c.moe_intermediate_size;
    const int64_t mix = (2 + c.hc_mult) * c.hc_mult;
    tensor(p + "attn_norm.weight", {D}, 0.1f, 1.0f);
    tensor(p + "ffn_norm.weight", {D}, 0.1f, 1.0f);
    hc(p + "hc_attn", mix, c.hc_mult * D);
    hc(p + "hc_ffn", mix, c.hc_mult * D);
    tensor(p + "attn.attn_sink", {H}, 1.0f);
    linear(p + "attn.wq_a", ql, D, 1);
    tensor(p + "attn.q_norm.weight", {ql}, 0.1f, 1.0f);
    linear(p + "attn.wq_b", H * hd, ql, 1);
    linear(p + "attn.wkv", hd, D, 1);
    tensor(p + "attn.kv_norm.weight", {hd}, 0.1f, 1.0f);
    linear(p + "attn.wo_a", c.o_groups * c.o_lora_rank, H * hd / c.o_groups, 1, 0.5f);
    linear(p + "attn.wo_b", D, c.o_groups * c.o_lora_rank, 1, 0.5f);
    if (ratio > 0) {
      const int64_t coff = ratio == 4 ? 2 : 1;
      linear(p + "attn.compressor.wkv", coff * hd, D, 0);
      linear(p + "attn.compressor.wgate", coff * hd, D, 0);
      tensor(p + "attn.compressor.ape", {ratio, coff * hd}, 0.1f);
      tensor(p + "attn.compressor.norm.weight", {hd}, 0.1f, 1.0f);
    }
    if (ratio == 4) {
      const int64_t ihd = c.index_head_dim;
      linear(p + "attn.indexer.wq_b", c.index_n_heads * ihd, ql, 1);
      linear(p + "attn.indexer.weights_proj", c.index_n_heads, D, 0);
      linear(p + "attn.indexer.compressor.wkv", 2 * ihd, D, 0);
      linear(p + "attn.indexer.compressor.wgate", 2 * ihd, D, 0);
      tensor(p + "attn.indexer.compressor.ape", {4, 2 * ihd}, 0.1f);
      tensor(p + "attn.indexer.compressor.norm.weight", {ihd}, 0.1f, 1.0f);
    }
    linear(p + "ffn.gate", c.n_routed_experts, D, 0);
    if (hash) {
      TensorView t = make_owned_tensor(DType::I64, {c.vocab_size, c.experts_per_token}, p + "ffn.gate.tid2eid");
      std::vector<int64_t> perm(static_cast<size_t>(c.n_routed_experts));
      for (int64_t v = 0; v < c.vocab_size; ++v) {
        std::iota(perm.begin(), perm.end(), 0);
        std::shuffle(perm.begin(), perm.end(), rng_);
        for (int64_t j = 0; j < c.experts_per_token; ++j)
          reinterpret_cast<int64_t*>(mutable_data(t))[v * c.experts_per_token + j] = perm[static_cast<size_t>(j)];
      }
      ckpt_.tensors[p + "ffn.gate.tid2eid"] = t;
    } else {
      tensor(p + "ffn.gate.bias", {c.n_routed_experts}, 0.1f);
    }
    for (int64_t e = 0; e < c.n_routed_experts; ++e) {
      const std::string q = p + "ffn.experts." + std::to_string(e) + ".";
      linear(q + "w1", I, D, 2);
      linear(q + "w2", D, I, 2, 0.5f);
      linear(q + "w3", I, D, 2);
    }
    linear(p + "ffn.shared_experts.w1", I, D, 1);
    linear(p + "ffn.shared_experts.w2", D, I, 1, 0.5f);
    linear(p + "ffn.shared_experts.w3", I, D, 1);
  }

 private:
  Checkpoint& ckpt_;
  RandomEncoding enc_;
  std::mt19937 rng_;
};

}  // namespace detail

inline ModelConfig tiny_config(std::vector<int64_t> compress_ratios, int64_t hash_layers, int64_t mtp_layers) {
  ModelConfig c;
  c.vocab_size = 256;
  c.hidden_size = 128;
  c.num_layers = static_cast<int64_t>(compress_ratios.size());
  c.num_mtp_layers = mtp_layers;
  for (int64_t j = 0; j < mtp_layers; ++j) compress_ratios.push_back(0);
  c.compress_ratios = compress_ratios;
  c.num_heads = 4;
  c.head_dim = 128;
  c.rope_head_dim = 64;
  c.q_lora_rank = 128;
  c.o_lora_rank = 128;
  c.o_groups = 2;
  c.sliding_window = 8;
  c.yarn = {16.0, 65536, 32.0, 1.0};
  c.index_n_heads = 4;
  c.index_head_dim = 128;
  c.index_topk = 3;
  c.n_routed_experts = 4;
  c.n_shared_experts = 1;
  c.experts_per_token = 2;
  c.moe_intermediate_size = 128;
  c.num_hash_layers = hash_layers;
  c.routed_scaling_factor = 1.5;
  c.swiglu_limit = 1.0;
  c.hc_mult = 4;
  c.hc_sinkhorn_iters = 20;
  return c;
}

inline Checkpoint random_checkpoint(const ModelConfig& config, RandomEncoding encoding, uint32_t seed) {
  Checkpoint c;
  c.config = config;
  c.layout = "in-memory test";
  detail::Builder b(c, encoding, seed);
  const int64_t D = config.hidden_size;
  b.tensor("embed.weight", {config.vocab_size, D}, 1.0f);
  b.linear("head", config.vocab_size, D, 0);
  b.tensor("norm.weight", {D}, 0.1f, 1.0f);
  b.hc("hc_head", config.hc_mult, config.hc_mult * D);
  for (int64_t i = 0; i < config.num_layers; ++i)
    b.block("layers." + std::to_string(i) + ".", config, config.compress_ratio(i), config.is_hash_layer(i));
  for (int64_t j = 0; j < config.num_mtp_layers; ++j) {
    const std::string p = "mtp." + std::to_string(j) + ".";
    b.linear(p + "e_proj", D, D, 1);
    b.linear(p + "h_proj", D, D, 1);
    b.tensor(p + "enorm.weight", {D}, 0.1f, 1.0f);
    b.tensor(p + "hnorm.weight", {D}, 0.1f, 1.0f);
    b.tensor(p + "norm.weight", {D}, 0.1f, 1.0f);
    b.hc(p + "hc_head", config.hc_mult, config.hc_mult * D);
    b.block(p, config, config.compress_ratio(config.num_layers + j), false);
  }
  return c;
}

}  // namespace fp4serve::testing
