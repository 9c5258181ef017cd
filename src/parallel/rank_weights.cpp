#include "parallel/rank_weights.h"

#include <fmt/format.h>

#include <cstring>

#include "base/error.h"

namespace fp4serve {
namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool is_routed_expert(const std::string& name) { return name.find(".ffn.experts.") != std::string::npos; }

const TensorShard& shard_of(const std::vector<TensorShard>& shards, const std::string& name) {
  for (const TensorShard& s : shards)
    if (s.name == name) return s;
  fail("shard plan: no entry for {}", name);
}

// Every layer (main and MTP) must agree on the rows of the rank's slice of the linears
// `which` picks, which set one field of the rank's config.
template <typename Which>
int64_t agreed_rows(const ShardPlan& plan, int rank, const Which& which, const char* field) {
  int64_t extent = -1;
  std::string first;
  for (const TensorShard& s : plan.linears) {
    if (!which(s.name)) continue;
    const SliceRect& r = s.ranks[static_cast<size_t>(rank)];
    const int64_t e = r.empty() ? 0 : r.rows();
    if (e == 0)
      fail("{}: rank {} of {} holds none of it, so its {} would be 0; choose a tensor-parallel size that divides it",
           s.name, rank, plan.parallel.tensor_parallel_size, field);
    if (extent < 0) {
      extent = e;
      first = s.name;
    } else if (e != extent) {
      fail("{}: rank {} holds {} of it but {} of {}; a rank's {} must be the same in every layer", s.name, rank, e,
           extent, first, field);
    }
  }
  FP4SERVE_CHECK(extent > 0, "shard plan: no linear gives the {}", field);
  return extent;
}

auto named(const std::string& suffix) {
  return [suffix](const std::string& name) { return ends_with(name, suffix); };
}

// An owned copy of embed.weight's rows [begin, end) and one more row of zeros.
TensorView embedding_rows(const ReadRuns& reader, const TensorView& embed, int64_t begin, int64_t end) {
  const TensorView slice = read_tensor_slice(reader, embed, SliceRect{begin, end, 0, embed.shape.at(1)});
  TensorView t = make_owned_tensor(embed.dtype, {end - begin + 1, embed.shape.at(1)},
                                   fmt::format("{} rows [{}, {}) and a zero row", embed.origin, begin, end));
  std::memcpy(mutable_data(t), slice.data, slice.nbytes);
  return t;
}

// All-zero weights in the encoding and shape of `like` (finite zero scales): its output is 0.
LinearWeight zero_like(const LinearWeight& like) {
  LinearWeight z;
  z.encoding = like.encoding;
  z.out_features = like.out_features;
  z.in_features = like.in_features;
  z.global_scale = like.global_scale;
  z.input_scale = like.input_scale;
  z.name = "an expert another rank holds (zeros)";
  z.weight = make_owned_tensor(like.weight.dtype, like.weight.shape, z.name);
  if (like.scale.nbytes > 0) z.scale = make_owned_tensor(like.scale.dtype, like.scale.shape, z.name + " scale");
  validate_linear_weight(z);
  return z;
}

// "mxfp4 [2048, 4096]": what a zero expert must match.
std::string kind_of(const LinearWeight& w) {
  return fmt::format("{} [{}, {}]", encoding_name(w.encoding), w.out_features, w.in_features);
}

// The block prefix of a routed expert's name: "layers.3." of "layers.3.ffn.experts.7.w1".
std::string block_of(const std::string& name) { return name.substr(0, name.find("ffn.experts.")); }

}  // namespace

std::vector<int64_t> vocab_columns(const ShardPlan& plan) {
  const TensorShard& head = shard_of(plan.linears, "head");
  std::vector<int64_t> out;
  for (const SliceRect& r : head.ranks) out.push_back(r.empty() ? 0 : r.rows());
  return out;
}

RankWeights read_rank_weights(const Checkpoint& ck, const ShardPlan& plan, int rank, const ReadRuns& reader) {
  const int n = plan.parallel.tensor_parallel_size;
  FP4SERVE_CHECK(rank >= 0 && rank < n, "rank {} is outside [0, {})", rank, n);
  RankWeights w;
  w.rank = rank;
  w.config = ck.config;
  const ModelConfig& c = ck.config;

  const SliceRect& head = shard_of(plan.linears, "head").ranks[static_cast<size_t>(rank)];
  FP4SERVE_CHECK(!head.empty(), "head: rank {} of {} holds none of its {} vocabulary rows", rank, n, c.vocab_size);
  w.vocab_begin = head.row_begin;
  w.vocab_end = head.row_end;
  const SliceRect& embed = shard_of(plan.tensors, "embed.weight").ranks[static_cast<size_t>(rank)];
  FP4SERVE_CHECK(embed.row_begin == head.row_begin && embed.row_end == head.row_end,
                 "embed.weight: rank {} holds vocabulary rows [{}, {}), its head [{}, {}); they must match", rank,
                 embed.row_begin, embed.row_end, head.row_begin, head.row_end);

  w.config.num_heads = agreed_rows(plan, rank, named("attn.wq_b"), "head count") / c.head_dim;
  w.config.o_groups = agreed_rows(plan, rank, named("attn.wo_a"), "output group count") / c.o_lora_rank;
  w.shared_intermediate = agreed_rows(plan, rank, named("ffn.shared_experts.w1"), "shared expert intermediate size");
  // Routed experts: whole under expert parallelism, else split by their own blocks.
  if (!plan.parallel.expert_parallel) {
    auto routed_w1 = [](const std::string& name) { return is_routed_expert(name) && ends_with(name, ".w1"); };
    w.config.moe_intermediate_size = agreed_rows(plan, rank, routed_w1, "routed expert intermediate size");
  }

  // Under expert parallelism: per block, the w1/w2/w3 an absent expert must look like.
  std::map<std::string, std::array<const LinearWeight*, 3>> absent_like;
  for (const TensorShard& s : plan.linears) {
    const LinearWeight& lw = ck.linear(s.name);
    const SliceRect& r = s.ranks[static_cast<size_t>(rank)];
    if (s.kind == ShardKind::kExpert) {
      if (r.empty()) {
        const size_t which = ends_with(s.name, ".w1") ? 0 : ends_with(s.name, ".w2") ? 1 : 2;
        const LinearWeight*& like = absent_like[block_of(s.name)][which];
        if (like == nullptr) like = &lw;
        FP4SERVE_CHECK(kind_of(*like) == kind_of(lw),
                       "{}: expert parallelism needs a block's routed experts in one encoding and shape; {} is {}, this is {}",
                       s.name, like->name, kind_of(*like), kind_of(lw));
        continue;
      }
    }
    if (s.kind == ShardKind::kReplicated || s.kind == ShardKind::kExpert) {
      w.linears.emplace(s.name, lw);
      continue;
    }
    FP4SERVE_CHECK(!r.empty(), "{}: rank {} of {} holds none of it", s.name, rank, n);
    w.linears.emplace(s.name, read_linear_slice(reader, lw, r));
  }
  // One zero expert per kind, shared by every block of that kind (a device places it once).
  for (const auto& [block, like] : absent_like) {
    FP4SERVE_CHECK(like[0] && like[1] && like[2], "{}ffn.experts: an expert absent from rank {} lacks w1, w2 or w3", block, rank);
    const std::string kind = kind_of(*like[0]) + kind_of(*like[1]) + kind_of(*like[2]);
    auto& zeros = w.absent_storage[kind];
    if (!zeros) {
      zeros = std::make_unique<std::array<LinearWeight, 3>>();
      for (size_t i = 0; i < 3; ++i) (*zeros)[i] = zero_like(*like[i]);
    }
    w.absent_experts[block] = ExpertWeights{&(*zeros)[0], &(*zeros)[1], &(*zeros)[2]};
  }

  for (const TensorShard& s : plan.tensors) {
    if (s.stored_only) continue;  // NVFP4 scalar scales: already in the LinearWeights
    const TensorView& t = ck.tensor(s.name);
    const SliceRect& r = s.ranks[static_cast<size_t>(rank)];
    if (s.name == "embed.weight") {
      w.tensors.emplace(s.name, embedding_rows(reader, t, w.vocab_begin, w.vocab_end));
    } else if (s.kind == ShardKind::kReplicated) {
      w.tensors.emplace(s.name, t);
    } else {
      FP4SERVE_CHECK(!r.empty(), "{}: rank {} of {} holds none of it", s.name, rank, n);
      w.tensors.emplace(s.name, read_tensor_slice(reader, t, r));
    }
  }
  return w;
}

}  // namespace fp4serve
