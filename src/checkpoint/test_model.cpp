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
      // Every attention kind and both routings: SWA+hash, CSA+hash, HCA(16)+learned, CSA+learned, MTP.
      {"tiny", {.vocab_size = 512, .hidden_size = 256, .num_layers = 4, .num_heads = 4, .head_dim = 128,
                .rope_head_dim = 64, .q_lora_rank = 128, .o_lora_rank = 128, .o_groups = 2, .sliding_window = 16,
                .compress_ratios = {0, 4, 16, 4, 0}, .yarn = kYarn, .max_position_embeddings = 65536,
                .index_n_heads = 4, .index_head_dim = 128, .index_topk = 4, .n_routed_experts = 8,
                .experts_per_token = 2, .moe_intermediate_size = 128, .num_hash_layers = 2}},
      // The Pro-like schedule: HCA first and three hash layers.
      {"tiny-pro", {.vocab_size = 512, .hidden_size = 256, .num_layers = 4, .num_heads = 4, .head_dim = 128,
                    .rope_head_dim = 64, .q_lora_rank = 128, .o_lora_rank = 128, .o_groups = 2, .sliding_window = 16,
                    .compress_ratios = {16, 16, 4, 16, 0}, .yarn = kYarn, .max_position_embeddings = 65536,
                    .index_n_heads = 4, .index_head_dim = 128, .index_topk = 4, .n_routed_experts = 8,
                    .experts_per_token = 2, .moe_intermediate_size = 128, .num_hash_layers = 3}},
      // The tiny schedule with every split of 2, 4 and 8 ranks whole: 8 heads in 4 output groups (at 8
      // ranks two share a group), intermediate 1024 (FP8 128-row blocks of the shared expert: 128 a rank
      // at 8), 8 experts (one a rank under expert parallelism).
      {"tiny-tp", {.vocab_size = 512, .hidden_size = 256, .num_layers = 4, .num_heads = 8, .head_dim = 128,
                   .rope_head_dim = 64, .q_lora_rank = 128, .o_lora_rank = 128, .o_groups = 4, .sliding_window = 16,
                   .compress_ratios = {0, 4, 16, 4, 0}, .yarn = kYarn, .max_position_embeddings = 65536,
                   .index_n_heads = 4, .index_head_dim = 128, .index_topk = 4, .n_routed_experts = 8,
                   .experts_per_token = 2, .moe_intermediate_size = 1024, .num_hash_layers = 2}},
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

// What every preset shares: one shared expert, V4's routing, RoPE bases and mHC settings.
ModelConfig with_common_fields(ModelConfig c) {
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

ModelConfig flash_proportioned_config(const FlashShape& s) {
  if (s.layers <= 0 || s.experts <= 0 || s.vocab <= 0 || s.hidden <= 0 || 4096 % s.hidden != 0 || s.hidden < 64)
    fail("flash preset: layers, experts and vocab must be positive and hidden a divisor of 4096 of at least 64 "
         "(got layers {}, experts {}, vocab {}, hidden {})",
         s.layers, s.experts, s.vocab, s.hidden);
  const int64_t scale = 4096 / s.hidden;  // 1 at Flash size
  ModelConfig c;
  c.vocab_size = s.vocab;
  c.hidden_size = s.hidden;
  c.num_layers = s.layers;
  for (int64_t i = 0; i < s.layers; ++i) c.compress_ratios.push_back(i < 2 ? 0 : (i % 2 == 0 ? 4 : 128));
  c.num_heads = 64 / scale;
  c.head_dim = 512;
  c.rope_head_dim = 64;
  c.q_lora_rank = 1024 / scale;
  c.o_lora_rank = 1024 / scale;
  c.o_groups = std::min<int64_t>(8, c.num_heads);
  c.sliding_window = 128;
  c.yarn = kYarn;
  c.max_position_embeddings = 65536;
  c.index_n_heads = 64 / scale;
  c.index_head_dim = 128;
  c.index_topk = 512;
  c.n_routed_experts = s.experts;
  c.experts_per_token = std::min<int64_t>(6, s.experts);
  c.moe_intermediate_size = 2048 / scale;
  c.num_hash_layers = std::min<int64_t>(3, s.layers);
  return with_draft(with_common_fields(c), DraftKind::kMtp);
}

std::vector<std::string> test_model_presets() {
  std::vector<std::string> names;
  for (const Preset& p : presets()) names.push_back(p.name);
  names.push_back("flash");
  return names;
}

ModelConfig test_model_config(const std::string& preset) {
  for (const Preset& p : presets())
    if (preset == p.name) {
      ModelConfig c = with_common_fields(p.shape);
      if (preset == "v4-pro") c.routed_scaling_factor = 2.5;
      return with_draft(c, DraftKind::kMtp);
    }
  if (preset == "flash") return flash_proportioned_config({});
  fail("unknown test model preset '{}' (known: tiny, tiny-pro, tiny-tp, small, large, flash, v4-flash, v4-pro)", preset);
}

ModelConfig with_draft(ModelConfig c, DraftKind draft) {
  c.compress_ratios.resize(static_cast<size_t>(c.num_layers));
  c.num_mtp_layers = 0;
  c.draft = DraftConfig{};
  c.draft.sliding_window = c.sliding_window;
  switch (draft) {
    case DraftKind::kNone: break;
    case DraftKind::kMtp:
      c.num_mtp_layers = 1;
      c.draft.kind = DraftKind::kMtp;
      c.draft.num_stages = 1;
      c.draft.block_size = 1;
      break;
    case DraftKind::kDSpark: {
      // DeepSeek-V4-Flash-0731's shape: 3 stages, block 5, the last three layers tapped, a Markov head.
      DraftConfig& d = c.draft;
      d.kind = DraftKind::kDSpark;
      d.num_stages = 3;
      d.block_size = 5;
      d.noise_token_id = c.vocab_size - 1;
      for (int64_t j = std::max<int64_t>(0, c.num_layers - 3); j < c.num_layers; ++j) d.target_layer_ids.push_back(j);
      d.markov_rank = std::min<int64_t>(256, std::max<int64_t>(16, c.hidden_size / 16));
      d.has_markov_head = true;
      d.has_confidence_head = true;
      break;
    }
  }
  c.compress_ratios.resize(static_cast<size_t>(c.num_layers + c.num_draft_blocks()), 0);
  return c;
}

bool parse_draft_kind(std::string_view name, DraftKind* out) {
  if (name == "none") *out = DraftKind::kNone;
  else if (name == "mtp") *out = DraftKind::kMtp;
  else if (name == "dspark") *out = DraftKind::kDSpark;
  else return false;
  return true;
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
  if (ends_with(n, "norm.weight") || ends_with(n, "_scale")) {
    for (float& x : v) x = 1.0f + 0.2f * (s.uniform() - 0.5f);
  } else {
    const float std = ends_with(n, "_fn")                               ? 0.02f
                      : ends_with(n, "_base") || ends_with(n, ".ape") ? 0.1f
                      : ends_with(n, "gate.bias")                     ? 0.01f
                                                                      : 1.0f;  // embedding, sinks, markov_w1
    for (float& x : v) x = std * s.normal();
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
  const ModelConfig config = with_draft(test_model_config(options.preset), options.draft);
  RandomMasters masters(config, options.seed, /*with_input_amax=*/options.layout == OutputLayout::kNvfp4);
  WriterOptions w;
  w.layout = options.layout;
  w.nvfp4_scope = options.nvfp4_scope;
  w.shard_bytes = options.shard_bytes;
  w.sparse = options.sparse;
  return write_checkpoint(dir, config, masters, w);
}

}  // namespace fp4serve
