#include "parallel/shard_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <numeric>
#include <set>

#include "base/error.h"
#include "io/safetensors.h"

namespace fp4serve {
namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Rows one block scale covers: FP8 blocks are 128x128; FP4 blocks are 1 row high.
int64_t row_block(WeightEncoding e) { return e == WeightEncoding::kFP8Block ? 128 : 1; }

// Columns one block scale covers (MXFP4 1x32, NVFP4 1x16); 2 keeps packed FP4 bytes whole.
int64_t col_block(WeightEncoding e) {
  switch (e) {
    case WeightEncoding::kFP8Block: return 128;
    case WeightEncoding::kMXFP4: return 32;
    case WeightEncoding::kNVFP4: return 16;
    default: return 1;
  }
}

// Columns of a cut through a linear's input that a rank's partial product can start or end
// at: whole scale blocks, and for FP8-block and MXFP4 weights, whose inputs DeepSeek's
// numerics quantize to FP8 in 1x128 blocks (--act-quant auto on native checkpoints), whole
// activation blocks, so that each rank quantizes exactly the blocks the whole model does.
// (NVFP4 inputs are quantized only under --act-quant fp8; a cut that is not a multiple of
// 128 there is refused when the model is built.)
int64_t input_cut(WeightEncoding e) {
  return e == WeightEncoding::kFP8Block || e == WeightEncoding::kMXFP4 ? std::lcm(col_block(e), int64_t{128}) : col_block(e);
}

// The smallest count of `unit`-sized pieces whose extent is a multiple of every block in `blocks`.
int64_t units_per_granule(int64_t unit, std::initializer_list<int64_t> blocks) {
  int64_t extent = unit;
  for (int64_t b : blocks) extent = std::lcm(extent, b);
  return extent / unit;
}

struct Range {
  int64_t begin = 0, end = 0;
};

// Splits `units` over `n` ranks in whole granules of `granule` units: even when the
// granules divide, else the first ranks get one granule more. The last granule may be
// short (units need not be a multiple of granule). Describes any unevenness in *note.
std::vector<Range> split_units(int64_t units, int64_t granule, int n, const std::string& what, std::string* note) {
  const int64_t granules = (units + granule - 1) / granule;
  const int64_t base = granules / n, extra = granules % n;
  std::vector<Range> out;
  int64_t at = 0;
  for (int r = 0; r < n; ++r) {
    const int64_t g = base + (r < extra ? 1 : 0);
    const int64_t begin = std::min(at * granule, units), end = std::min((at + g) * granule, units);
    out.push_back({begin, end});
    at += g;
  }
  if (extra != 0) {
    const std::string unit = granule == 1 ? what : fmt::format("blocks of {} {}", granule, what);
    *note = fmt::format("{} {} over {} ranks: ranks 0-{} get {} each, the others {}{}", granules, unit, n, extra - 1,
                        base + 1, base, base == 0 ? " (a rank with none skips this op)" : "");
  }
  return out;
}

// Row/column extent of a tensor seen as a matrix.
void matrix_extent(const std::vector<int64_t>& shape, int64_t* rows, int64_t* cols) {
  if (shape.empty()) {
    *rows = *cols = 1;
    return;
  }
  *rows = shape[0];
  *cols = 1;
  for (size_t i = 1; i < shape.size(); ++i) *cols *= shape[i];
}

class Planner {
 public:
  Planner(const Checkpoint& ck, const ParallelConfig& p) : ck_(ck), c_(ck.config), p_(p), n_(p.tensor_parallel_size) {}

  ShardPlan run() {
    if (n_ < 1) fail("--tensor-parallel-size {}: must be at least 1", n_);
    embedding_and_head();
    shared_granule_ = granule_over_layers("shared");
    routed_granule_ = p_.expert_parallel ? 1 : granule_over_layers("routed");
    for (int64_t i = 0; i < c_.num_layers; ++i) block(fmt::format("layers.{}.", i));
    for (int64_t j = 0; j < c_.num_mtp_layers; ++j) block(fmt::format("mtp.{}.", j));
    ShardPlan plan;
    plan.parallel = p_;
    for (const auto& [name, lw] : ck_.linears) plan.linears.push_back(take(name, true, lw.out_features, lw.in_features));
    for (const auto& [name, t] : ck_.tensors) {
      int64_t rows, cols;
      matrix_extent(t.shape, &rows, &cols);
      plan.tensors.push_back(take(name, false, rows, cols));
    }
    for (const std::string& stored : uncovered_stored_tensors()) {
      TensorShard s = replicated(stored, false, 1, 1);
      const TensorView& t = ck_.source->tensor(stored);
      matrix_extent(t.shape, &s.rows, &s.cols);
      s.ranks.assign(size_t(n_), SliceRect{0, s.rows, 0, s.cols});
      s.stored_only = true;
      plan.tensors.push_back(std::move(s));
    }
    plan.notes.assign(notes_.begin(), notes_.end());
    return plan;
  }

 private:
  WeightEncoding enc(const std::string& linear) const { return ck_.linear(linear).encoding; }
  bool has(const std::string& linear) const { return ck_.has_linear(linear); }

  TensorShard replicated(const std::string& name, bool is_linear, int64_t rows, int64_t cols) const {
    TensorShard s;
    s.name = name;
    s.is_linear = is_linear;
    s.rows = rows;
    s.cols = cols;
    s.ranks.assign(size_t(n_), SliceRect{0, rows, 0, cols});
    return s;
  }

  // The decided shard of `name`, or replicated when no rule claimed it.
  TensorShard take(const std::string& name, bool is_linear, int64_t rows, int64_t cols) {
    auto it = decided_.find(name);
    if (it == decided_.end()) return replicated(name, is_linear, rows, cols);
    TensorShard s = std::move(it->second);
    s.is_linear = is_linear;
    s.rows = rows;
    s.cols = cols;
    for (SliceRect& r : s.ranks) {  // rules give ranges on one axis; the other is whole
      if (s.kind == ShardKind::kRows) r.col_begin = 0, r.col_end = cols;
      if (s.kind == ShardKind::kColumns) r.row_begin = 0, r.row_end = rows;
      if (s.kind == ShardKind::kExpert && !r.empty()) r = SliceRect{0, rows, 0, cols};
    }
    return s;
  }

  void decide(const std::string& name, ShardKind kind, Combine combine, const std::vector<Range>& ranges,
              const std::string& note = {}) {
    TensorShard s;
    s.name = name;
    s.kind = kind;
    s.combine = combine;
    s.note = note;
    for (const Range& r : ranges) {
      if (kind == ShardKind::kColumns) s.ranks.push_back(SliceRect{0, 0, r.begin, r.end});
      else s.ranks.push_back(SliceRect{r.begin, r.end, 0, 0});
    }
    decided_[name] = std::move(s);
  }

  // Notes are kept once per kind of tensor: layer and expert indices become '*'.
  void remember(const std::string& note) {
    if (note.empty()) return;
    std::string folded;
    for (size_t i = 0; i < note.size(); ++i) {
      folded += note[i];
      if (note[i] != '.' || i + 1 >= note.size() || !std::isdigit(static_cast<unsigned char>(note[i + 1]))) continue;
      const bool indexed = ends_with(folded, "layers.") || ends_with(folded, "experts.") || ends_with(folded, "mtp.");
      if (!indexed) continue;
      folded += '*';
      while (i + 1 < note.size() && std::isdigit(static_cast<unsigned char>(note[i + 1]))) ++i;
    }
    notes_.insert(folded);
  }

  static std::vector<Range> scaled(const std::vector<Range>& ranges, int64_t factor) {
    std::vector<Range> out;
    for (const Range& r : ranges) out.push_back({r.begin * factor, r.end * factor});
    return out;
  }

  void embedding_and_head() {
    std::string note;
    if (ck_.has_tensor("embed.weight")) {
      const auto rows = split_units(c_.vocab_size, 1, n_, "vocabulary rows", &note);
      decide("embed.weight", ShardKind::kRows, Combine::kAllReduce, rows, note);
    }
    if (has("head")) {
      note.clear();
      const auto rows = split_units(c_.vocab_size, row_block(enc("head")), n_, "vocabulary rows", &note);
      if (!note.empty()) note = "head: " + note;
      decide("head", ShardKind::kRows, Combine::kAllGather, rows, note);
      remember(note);
    }
  }

  void block(const std::string& p) {
    attention(p);
    if (has(p + "ffn.shared_experts.w1")) mlp(p + "ffn.shared_experts.", "shared expert intermediate columns", shared_granule_);
    if (p_.expert_parallel) {
      experts_by_range(p);
    } else {
      for (int64_t e = 0; e < c_.n_routed_experts; ++e)
        mlp(fmt::format("{}ffn.experts.{}.", p, e), "routed expert intermediate columns", routed_granule_);
    }
  }

  // Heads feed output groups (wo_a is G stacked [R, H*hd/G] matrices) and wo_b mixes all
  // groups: a rank holds whole groups and their heads, or, with more ranks than groups,
  // a part of one group's heads.
  void attention(const std::string& p) {
    const std::string wq_b = p + "attn.wq_b", wo_a = p + "attn.wo_a", wo_b = p + "attn.wo_b";
    if (!has(wq_b) || !has(wo_a) || !has(wo_b)) return;
    const int64_t H = c_.num_heads, G = c_.o_groups, R = c_.o_lora_rank, hd = c_.head_dim;
    const int64_t heads_per_group = H / G;
    std::vector<Range> heads, wo_a_rows, wo_a_cols, groups;
    std::string note;
    if (n_ <= G) {
      const int64_t granule = units_per_granule(heads_per_group * hd, {row_block(enc(wq_b))});
      const int64_t group_granule =
          std::lcm(granule, units_per_granule(R, {row_block(enc(wo_a)), input_cut(enc(wo_b))}));
      groups = split_units(G, group_granule, n_, "output groups", &note);
      heads = scaled(groups, heads_per_group);
      wo_a_rows = scaled(groups, R);
      wo_a_cols.assign(size_t(n_), Range{0, heads_per_group * hd});
    } else {
      if (n_ % G != 0)
        fail("{}: {} ranks cannot share its {} output groups (o_groups): a tensor-parallel size must divide "
             "o_groups or be a multiple of it",
             wo_a, n_, G);
      const int sharers = static_cast<int>(n_ / G);
      const int64_t granule = units_per_granule(hd, {row_block(enc(wq_b)), col_block(enc(wo_a))});
      for (int64_t g = 0; g < G; ++g) {
        std::string group_note;
        const auto local = split_units(heads_per_group, granule, sharers, "heads of an output group", &group_note);
        if (!group_note.empty()) note = group_note;
        for (const Range& h : local) {
          heads.push_back({g * heads_per_group + h.begin, g * heads_per_group + h.end});
          wo_a_cols.push_back({h.begin * hd, h.end * hd});
          wo_a_rows.push_back(h.end > h.begin ? Range{g * R, (g + 1) * R} : Range{0, 0});
          groups.push_back(h.end > h.begin ? Range{g, g + 1} : Range{0, 0});
        }
      }
      for (const auto& [name, block] : {std::pair{wo_a, row_block(enc(wo_a))}, std::pair{wo_b, input_cut(enc(wo_b))}})
        if (R % block != 0)
          fail("{}: o_lora_rank {} is not a multiple of its {}-wide scale blocks, so {} ranks cannot share an output "
               "group",
               name, R, block, n_);
    }
    if (!note.empty()) note = fmt::format("{}attn: {}", p, note);
    remember(note);
    decide(wq_b, ShardKind::kRows, Combine::kNone, scaled(heads, hd), note);
    if (ck_.has_tensor(p + "attn.attn_sink")) decide(p + "attn.attn_sink", ShardKind::kRows, Combine::kNone, heads);
    TensorShard a;
    a.name = wo_a;
    a.kind = n_ <= G ? ShardKind::kRows : ShardKind::kBlock;
    a.note = note;
    for (int r = 0; r < n_; ++r) {
      const Range rows = wo_a_rows[size_t(r)], cols = wo_a_cols[size_t(r)];
      a.ranks.push_back(rows.end > rows.begin ? SliceRect{rows.begin, rows.end, cols.begin, cols.end} : SliceRect{});
    }
    decided_[wo_a] = std::move(a);
    decide(wo_b, ShardKind::kColumns, Combine::kAllReduce, scaled(groups, R), note);
  }

  // Intermediate units whole for every block of an expert's w1, w3 and w2 (1 if it is absent).
  int64_t mlp_granule(const std::string& p) const {
    const std::string w1 = p + "w1", w2 = p + "w2", w3 = p + "w3";
    if (!has(w1) || !has(w2) || !has(w3)) return 1;
    return units_per_granule(1, {row_block(enc(w1)), row_block(enc(w3)), input_cut(enc(w2))});
  }

  // One granule for every layer's experts of a kind (main layers and MTP blocks may be stored
  // in different encodings): each rank then holds the same intermediate size everywhere,
  // which its model is built with.
  int64_t granule_over_layers(const std::string& expert) const {
    int64_t g = 1;
    auto add = [&](const std::string& block) {
      if (expert == "shared") {
        g = std::lcm(g, mlp_granule(block + "ffn.shared_experts."));
        return;
      }
      for (int64_t e = 0; e < c_.n_routed_experts; ++e) g = std::lcm(g, mlp_granule(fmt::format("{}ffn.experts.{}.", block, e)));
    };
    for (int64_t i = 0; i < c_.num_layers; ++i) add(fmt::format("layers.{}.", i));
    for (int64_t j = 0; j < c_.num_mtp_layers; ++j) add(fmt::format("mtp.{}.", j));
    return g;
  }

  // w1/w3 split by output rows and w2 by the same input columns (the intermediate units a
  // rank computes), in granules whole for every block of the three in every layer.
  void mlp(const std::string& p, const char* what, int64_t granule) {
    const std::string w1 = p + "w1", w2 = p + "w2", w3 = p + "w3";
    if (!has(w1) || !has(w2) || !has(w3)) return;
    const int64_t inter = ck_.linear(w1).out_features;
    std::string note;
    const auto ranges = split_units(inter, granule, n_, what, &note);
    if (!note.empty()) note = fmt::format("{}{{w1,w2,w3}}: {}", p, note);
    remember(note);
    decide(w1, ShardKind::kRows, Combine::kNone, ranges, note);
    decide(w3, ShardKind::kRows, Combine::kNone, ranges, note);
    decide(w2, ShardKind::kColumns, Combine::kAllReduce, ranges, note);
  }

  void experts_by_range(const std::string& p) {
    std::string note;
    const auto owners = split_units(c_.n_routed_experts, 1, n_, "experts", &note);
    if (!note.empty()) remember(fmt::format("{}ffn.experts: {}", p, note));
    for (int r = 0; r < n_; ++r) {
      for (int64_t e = owners[size_t(r)].begin; e < owners[size_t(r)].end; ++e) {
        for (const char* w : {"w1", "w2", "w3"}) {
          const std::string name = fmt::format("{}ffn.experts.{}.{}", p, e, w);
          if (!has(name)) continue;
          TensorShard s;
          s.name = name;
          s.kind = ShardKind::kExpert;
          s.combine = Combine::kAllToAll;
          s.note = note;
          s.ranks.assign(size_t(n_), SliceRect{});
          s.ranks[size_t(r)] = SliceRect{0, 1, 0, 1};  // widened to the whole tensor by take()
          decided_[name] = std::move(s);
        }
      }
    }
  }

  // Stored tensors whose bytes no canonical view covers (the NVFP4 scalar scales, read
  // into LinearWeight as floats): every rank needs them.
  std::vector<std::string> uncovered_stored_tensors() const {
    std::vector<const std::byte*> starts;
    for (const auto& [name, lw] : ck_.linears) {
      if (lw.weight.nbytes) starts.push_back(lw.weight.data);
      if (lw.scale.nbytes) starts.push_back(lw.scale.data);
    }
    for (const auto& [name, t] : ck_.tensors)
      if (t.nbytes) starts.push_back(t.data);
    std::sort(starts.begin(), starts.end());
    std::vector<std::string> out;
    if (!ck_.source) return out;
    for (const std::string& name : ck_.source->tensor_names()) {
      const TensorView& t = ck_.source->tensor(name);
      if (t.nbytes == 0) continue;
      auto it = std::lower_bound(starts.begin(), starts.end(), t.data);
      if (it == starts.end() || *it >= t.data + t.nbytes) out.push_back(name);
    }
    return out;
  }

  const Checkpoint& ck_;
  const ModelConfig& c_;
  ParallelConfig p_;
  int n_;
  std::map<std::string, TensorShard> decided_;
  std::set<std::string> notes_;
  int64_t shared_granule_ = 1, routed_granule_ = 1;
};

// Bits of one logical element as stored (packed FP4 holds two per byte).
uint64_t element_bits(const LinearWeight& lw, const TensorView& weight) {
  if (lw.encoding == WeightEncoding::kMXFP4 || lw.encoding == WeightEncoding::kNVFP4) return 4;
  return dtype_size(weight.dtype) * 8;
}

// The runs of rect (in logical elements) of a row-major [rows, cols] tensor of
// `bits`-bit elements: whole rows as one run, else one run per row.
ByteRuns rect_runs(const TensorView& t, int64_t cols, uint64_t bits, const SliceRect& rect) {
  if (rect.empty() || t.nbytes == 0) return ByteRuns{&t, 0, 0, 0, 0};
  const uint64_t row_bytes = static_cast<uint64_t>(cols) * bits / 8;
  const uint64_t begin = static_cast<uint64_t>(rect.col_begin) * bits / 8;
  const uint64_t end = static_cast<uint64_t>(rect.col_end) * bits / 8;
  const uint64_t first_row = static_cast<uint64_t>(rect.row_begin) * row_bytes;
  if (rect.col_begin == 0 && rect.col_end == cols)
    return ByteRuns{&t, first_row, static_cast<uint64_t>(rect.rows()) * row_bytes, 1, 0};
  return ByteRuns{&t, first_row + begin, end - begin, static_cast<uint64_t>(rect.rows()), row_bytes};
}

}  // namespace

ShardPlan plan_shards(const Checkpoint& checkpoint, const ParallelConfig& parallel) {
  return Planner(checkpoint, parallel).run();
}

ByteRuns weight_runs(const LinearWeight& lw, const SliceRect& rect) {
  return rect_runs(lw.weight, lw.in_features, element_bits(lw, lw.weight), rect);
}

ByteRuns scale_runs(const LinearWeight& lw, const SliceRect& w) {
  if (lw.scale.nbytes == 0 || w.empty()) return ByteRuns{&lw.scale, 0, 0, 0, 0};
  const int64_t rb = row_block(lw.encoding), cb = col_block(lw.encoding);
  const SliceRect blocks{w.row_begin / rb, (w.row_end + rb - 1) / rb, w.col_begin / cb, (w.col_end + cb - 1) / cb};
  int64_t rows, cols;
  matrix_extent(lw.scale.shape, &rows, &cols);
  return rect_runs(lw.scale, cols, dtype_size(lw.scale.dtype) * 8, blocks);
}

ByteRuns tensor_runs(const TensorView& t, const SliceRect& rect) {
  int64_t rows, cols;
  matrix_extent(t.shape, &rows, &cols);
  return rect_runs(t, cols, dtype_size(t.dtype) * 8, rect);
}

std::vector<ByteRuns> rank_byte_ranges(const Checkpoint& ck, const ShardPlan& plan, int rank) {
  if (rank < 0 || rank >= plan.parallel.tensor_parallel_size)
    fail("rank {} is outside [0, {})", rank, plan.parallel.tensor_parallel_size);
  std::vector<ByteRuns> out;
  auto add = [&](const ByteRuns& runs) {
    if (runs.count > 0 && runs.length > 0) out.push_back(runs);
  };
  for (const TensorShard& s : plan.linears) {
    const LinearWeight& lw = ck.linear(s.name);
    add(weight_runs(lw, s.ranks[size_t(rank)]));
    add(scale_runs(lw, s.ranks[size_t(rank)]));
  }
  for (const TensorShard& s : plan.tensors)
    add(tensor_runs(s.stored_only ? ck.source->tensor(s.name) : ck.tensor(s.name), s.ranks[size_t(rank)]));
  return out;
}

const char* shard_kind_name(ShardKind kind) {
  switch (kind) {
    case ShardKind::kReplicated: return "replicated";
    case ShardKind::kRows: return "rows";
    case ShardKind::kColumns: return "columns";
    case ShardKind::kBlock: return "rows+columns";
    case ShardKind::kExpert: return "expert";
  }
  return "?";
}

const char* combine_name(Combine combine) {
  switch (combine) {
    case Combine::kNone: return "none";
    case Combine::kAllReduce: return "all-reduce";
    case Combine::kAllGather: return "all-gather";
    case Combine::kAllToAll: return "all-to-all";
  }
  return "?";
}

}  // namespace fp4serve
