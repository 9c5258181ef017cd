#include "checkpoint/test_model.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "base/error.h"

namespace fp4serve {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t fnv1a(const std::string& text) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char ch : text) h = (h ^ ch) * 0x100000001B3ull;
  return h;
}

// A per-tensor stream: only integer arithmetic and exact float operations, so the
// values are the same on every machine and compiler.
class Stream {
 public:
  Stream(uint64_t seed, const std::string& name) : state_(seed ^ fnv1a(name)) {}
  float uniform() { return static_cast<float>(splitmix64(state_) >> 40) * 0x1p-24f; }  // [0, 1)
  // Irwin-Hall(4) rescaled to unit variance: bounded (+-3.46) and libm-free.
  float normal() {
    const float s = uniform() + uniform() + uniform() + uniform();
    return (s - 2.0f) * 1.7320508f;
  }
  uint64_t next() { return splitmix64(state_); }

 private:
  uint64_t state_;
};

bool ends_with(const std::string& s, const char* tail) {
  const size_t n = std::char_traits<char>::length(tail);
  return s.size() >= n && s.compare(s.size() - n, n, tail) == 0;
}

// Every preset's compressed layers use V4's YaRN (factor 16 over 65,536 positions).
constexpr YarnConfig kYarn{16.0, 65536, 32.0, 1.0};

// DeepSeek-V4's schedules: `head` layers, then (4, 128) pairs, then a last CSA layer and the MTP layer (0).
std::vector<int64_t> v4_ratios(std::vector<int64_t> head, int pairs) {
  for (int i = 0; i < pairs; ++i) head.insert(head.end(), {4, 128});
  head.insert(head.end(), {4, 0});
  return head;
}

struct Preset {
  const char* name;
  ModelConfig shape;  // what the presets differ in; with_common_fields adds the rest
};

const std::vector<Preset>& presets() {
  static const std::vector<Preset> table = {
      // dsv4-architecture.md §7: SWA+hash, CSA+hash, HCA(16)+learned, CSA+learned, MTP.
      {"tiny", {.vocab_size = 512, .hidden_size = 256, .num_layers = 4, .num_heads = 4, .head_dim = 128,
                .rope_head_dim = 64, .q_lora_rank = 128, .o_lora_rank = 128, .o_groups = 2, .sliding_window = 16,
                .compress_ratios = {0, 4, 16, 4, 0}, .yarn = kYarn, .max_position_embeddings = 65536,
                .index_n_heads = 4, .index_head_dim = 128, .index_topk = 4, .n_routed_experts = 8,
                .experts_per_token = 2, .moe_intermediate_size = 128, .num_hash_layers = 2}},
      // §7 variant c: HCA first and three hash layers.
      {"tiny-pro", {.vocab_size = 512, .hidden_size = 256, .num_layers = 4, .num_heads = 4, .head_dim = 128,
                    .rope_head_dim = 64, .q_lora_rank = 128, .o_lora_rank = 128, .o_groups = 2, .sliding_window = 16,
                    .compress_ratios = {16, 16, 4, 16, 0}, .yarn = kYarn, .max_position_embeddings = 65536,
                    .index_n_heads = 4, .index_head_dim = 128, .index_topk = 4, .n_routed_experts = 8,
                    .experts_per_token = 2, .moe_intermediate_size = 128, .num_hash_layers = 3}},
      // The tiny schedule at hidden 64 (the transformers fixture's shapes): small enough to commit,
      // and FP8 blocks cut at the edges (no dimension is a multiple of 128).
      {"small", {.vocab_size = 64, .hidden_size = 64, .num_layers = 4, .num_heads = 2, .head_dim = 64,
                 .rope_head_dim = 16, .q_lora_rank = 32, .o_lora_rank = 32, .o_groups = 2, .sliding_window = 8,
                 .compress_ratios = {0, 4, 8, 4, 0}, .yarn = kYarn, .max_position_embeddings = 65536,
                 .index_n_heads = 2, .index_head_dim = 32, .index_topk = 2, .n_routed_experts = 4,
                 .experts_per_token = 2, .moe_intermediate_size = 32, .num_hash_layers = 2}},
      // Flash-like proportions at hidden 2048: 12 layers of 32 experts of width 1024 (multi-GB).
      {"large", {.vocab_size = 32768, .hidden_size = 2048, .num_layers = 12, .num_heads = 16, .head_dim = 512,
                 .rope_head_dim = 64, .q_lora_rank = 512, .o_lora_rank = 512, .o_groups = 4, .sliding_window = 128,
                 .compress_ratios = {0, 4, 128, 4, 128, 4, 128, 4, 128, 4, 128, 4, 0}, .yarn = kYarn,
                 .max_position_embeddings = 65536, .index_n_heads = 16, .index_head_dim = 128, .index_topk = 64,
                 .n_routed_experts = 32, .experts_per_token = 4, .moe_intermediate_size = 1024, .num_hash_layers = 2}},
      // The released models' shapes (HF config.json of deepseek-ai/DeepSeek-V4-Flash and -Pro), for
      // plans and cost models; at full size only as sparse checkpoints (make-test-model --sparse).
      {"v4-flash", {.vocab_size = 129280, .hidden_size = 4096, .num_layers = 43, .num_heads = 64, .head_dim = 512,
                    .rope_head_dim = 64, .q_lora_rank = 1024, .o_lora_rank = 1024, .o_groups = 8,
                    .sliding_window = 128, .compress_ratios = v4_ratios({0, 0}, 20), .yarn = kYarn,
                    .max_position_embeddings = 1048576, .index_n_heads = 64, .index_head_dim = 128,
                    .index_topk = 512, .n_routed_experts = 256, .experts_per_token = 6,
                    .moe_intermediate_size = 2048, .num_hash_layers = 3}},
      {"v4-pro", {.vocab_size = 129280, .hidden_size = 7168, .num_layers = 61, .num_heads = 128, .head_dim = 512,
                  .rope_head_dim = 64, .q_lora_rank = 1536, .o_lora_rank = 1024, .o_groups = 16,
                  .sliding_window = 128, .compress_ratios = v4_ratios({128, 128}, 29), .yarn = kYarn,
                  .max_position_embeddings = 1048576, .index_n_heads = 64, .index_head_dim = 128,
                  .index_topk = 1024, .n_routed_experts = 384, .experts_per_token = 6,
                  .moe_intermediate_size = 3072, .num_hash_layers = 3}},
  };
  return table;
}

// What every preset shares: one MTP layer, one shared expert, V4's routing, RoPE bases and mHC settings.
ModelConfig with_common_fields(ModelConfig c) {
  c.num_mtp_layers = 1;
  c.n_shared_experts = 1;
  c.scoring_func = "sqrtsoftplus";
  c.routed_scaling_factor = 1.5;
  c.swiglu_limit = 10.0;
  c.rope_theta = 10000;
  c.compress_rope_theta = 160000;
  c.hc_mult = 4;
  c.hc_sinkhorn_iters = 20;
  c.hc_eps = 1e-6;
  c.rms_norm_eps = 1e-6;
  return c;
}

}  // namespace

std::vector<std::string> test_model_presets() {
  std::vector<std::string> names;
  for (const Preset& p : presets()) names.push_back(p.name);
  return names;
}

ModelConfig test_model_config(const std::string& preset) {
  for (const Preset& p : presets())
    if (preset == p.name) {
      ModelConfig c = with_common_fields(p.shape);
      if (preset == "v4-pro") c.routed_scaling_factor = 2.5;
      return c;
    }
  fail("unknown test model preset '{}' (known: tiny, tiny-pro, small, large, v4-flash, v4-pro)", preset);
}

RandomMasters::RandomMasters(const ModelConfig& config, uint64_t seed, bool with_input_amax)
    : config_(config), seed_(seed), with_input_amax_(with_input_amax) {}

std::vector<float> RandomMasters::linear(const ExpectedLinear& l) {
  Stream s(seed_, l.name);
  const float sigma = 1.0f / std::sqrt(static_cast<float>(l.in_features));
  std::vector<float> w(static_cast<size_t>(l.out_features * l.in_features));
  for (float& x : w) x = sigma * s.normal();
  return w;
}

std::vector<float> RandomMasters::tensor(const ExpectedTensor& t) {
  Stream s(seed_, t.name);
  const std::string& n = t.name;
  std::vector<float> v(static_cast<size_t>(element_count(t.shape)));
  for (float& x : v) {
    if (ends_with(n, "norm.weight") || ends_with(n, "_scale")) {
      x = 1.0f + 0.2f * (s.uniform() - 0.5f);
    } else if (ends_with(n, "_fn")) {
      x = 0.02f * s.normal();
    } else if (ends_with(n, "_base") || ends_with(n, ".ape")) {
      x = 0.1f * s.normal();
    } else if (ends_with(n, "gate.bias")) {
      x = 0.01f * s.normal();
    } else {
      x = s.normal();  // embedding, attention sinks
    }
  }
  return v;
}

std::vector<int64_t> RandomMasters::index_tensor(const ExpectedTensor& t) {
  // Each row: the first k of a seeded Fisher-Yates shuffle of the experts (distinct ids).
  Stream s(seed_, t.name);
  const int64_t rows = t.shape.at(0), k = t.shape.at(1), experts = config_.n_routed_experts;
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(rows * k));
  std::vector<int64_t> ids(static_cast<size_t>(experts));
  for (int64_t r = 0; r < rows; ++r) {
    std::iota(ids.begin(), ids.end(), 0);
    for (int64_t i = 0; i < k; ++i) {
      const int64_t j = i + static_cast<int64_t>(s.next() % static_cast<uint64_t>(experts - i));
      std::swap(ids[size_t(i)], ids[size_t(j)]);
      out.push_back(ids[size_t(i)]);
    }
  }
  return out;
}

std::optional<float> RandomMasters::input_amax(const ExpectedLinear& l) {
  if (!with_input_amax_) return std::nullopt;
  Stream s(seed_, l.name + ".input_amax");
  return 2.0f + 8.0f * s.uniform();
}

WriteReport write_test_model(const std::string& dir, const TestModelOptions& options) {
  const ModelConfig config = test_model_config(options.preset);
  RandomMasters masters(config, options.seed, /*with_input_amax=*/options.layout == OutputLayout::kNvfp4);
  WriterOptions w;
  w.layout = options.layout;
  w.nvfp4_scope = options.nvfp4_scope;
  w.shard_bytes = options.shard_bytes;
  w.sparse = options.sparse;
  return write_checkpoint(dir, config, masters, w);
}

}  // namespace fp4serve
