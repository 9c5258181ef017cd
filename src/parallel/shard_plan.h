// How a checkpoint is split over N ranks (tensor parallelism, optionally expert
// parallelism), keyed by canonical tensor names, computed from headers only.
//
//   column split (output rows)  attn.wq_b by heads (with attn.attn_sink), shared_experts.w1/w3,
//                               routed experts' w1/w3 without expert parallelism, the head by vocab
//   row split (input columns)   attn.wo_b, shared_experts.w2, routed experts' w2 without expert
//                               parallelism: each rank's partial products are summed (all-reduce)
//   output groups               attn.wo_a: a rank holds whole groups and the heads that feed them;
//                               with more ranks than groups, the ranks sharing a group split its heads
//                               (wo_a by rows and columns) and each keeps the group's wo_b columns
//   vocabulary                  embed.weight by rows (lookup, then all-reduce); head by rows (all-gather)
//   whole experts by range      ffn.experts.E.* with expert parallelism (tokens go to the owner: all-to-all)
//   replicated                  what every head needs: wq_a, wkv, compressors, indexer, router, norms,
//                               mHC parameters, MTP projections, scalar NVFP4 scales
//
// Every split is cut at whole encoding blocks (FP8 128x128, MXFP4 1x32, NVFP4 1x16), so each
// rank's scales are exactly the blocks of its weights, and a row split's input columns of an FP8
// or MXFP4 linear at whole 128-wide activation blocks (the FP8 activations' 1x128 quantization). When the even split would cut a block
// (or a head, or an output group) the plan hands out whole blocks unevenly instead and says so
// in the tensor's note; it refuses (an Error naming the tensor) only what no split can serve.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "io/ranged_read.h"

namespace fp4serve {

struct ParallelConfig {
  int tensor_parallel_size = 1;
  bool expert_parallel = false;  // --enable-expert-parallel: routed experts by range, not by columns
};

// A rank's part of a tensor seen as a matrix [rows, columns] in logical (unpacked)
// elements: a 1-D tensor is [n, 1], a scalar [1, 1], an N-D one [dim0, product of the rest].
struct SliceRect {
  int64_t row_begin = 0, row_end = 0;
  int64_t col_begin = 0, col_end = 0;
  bool empty() const { return row_end <= row_begin || col_end <= col_begin; }
  int64_t rows() const { return row_end - row_begin; }
  int64_t cols() const { return col_end - col_begin; }
};

enum class ShardKind : uint8_t {
  kReplicated,  // every rank holds all of it
  kRows,        // split along the first dimension (output features, vocabulary, heads)
  kColumns,     // split along the second dimension (input features)
  kBlock,       // rows and columns (wo_a when several ranks share an output group)
  kExpert,      // one whole routed expert, held by one rank (expert parallelism)
};

// What brings the ranks' results of the op back together.
enum class Combine : uint8_t { kNone, kAllReduce, kAllGather, kAllToAll };

struct TensorShard {
  std::string name;  // canonical linear module ("layers.0.attn.wq_b") or tensor ("embed.weight")
  bool is_linear = false;
  bool stored_only = false;  // a stored tensor no canonical name covers: `name` is its stored name
  ShardKind kind = ShardKind::kReplicated;
  Combine combine = Combine::kNone;
  int64_t rows = 0, cols = 0;   // logical extent
  std::vector<SliceRect> ranks;  // one per rank; an empty rect: the rank holds none of it
  std::string note;              // why the split is uneven or not the obvious one; empty if it is
};

struct ShardPlan {
  ParallelConfig parallel;
  std::vector<TensorShard> linears;  // in canonical name order
  std::vector<TensorShard> tensors;  // plain tensors, then stored tensors no canonical name covers
                                     // (NVFP4 weight_scale_2 / input_scale scalars), replicated
  std::vector<std::string> notes;    // one line per kind of departure from even splits, for reports
};

// Throws Error naming the tensor when no split can serve it (e.g. a TP size that
// neither divides nor is a multiple of o_groups), or for a size < 1.
ShardPlan plan_shards(const Checkpoint& checkpoint, const ParallelConfig& parallel);

// The bytes rank `rank` needs (what it reads with RangedReader): each of its slices mapped onto the weight's and the
// scale's storage (packed FP4 columns, block-scale rows and columns).
std::vector<ByteRuns> rank_byte_ranges(const Checkpoint& checkpoint, const ShardPlan& plan, int rank);

// The runs that hold `rect` of a linear's weight (packed FP4 columns included) and of its
// block scale (the blocks the rect's rows and columns fall in; count 0 without a scale),
// and of a plain tensor seen as [rows, cols].
ByteRuns weight_runs(const LinearWeight& linear, const SliceRect& rect);
ByteRuns scale_runs(const LinearWeight& linear, const SliceRect& rect);
ByteRuns tensor_runs(const TensorView& tensor, const SliceRect& rect);

const char* shard_kind_name(ShardKind kind);
const char* combine_name(Combine combine);

}  // namespace fp4serve
