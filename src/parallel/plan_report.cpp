#include "parallel/plan_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"

namespace fp4serve {
namespace {

// Decimal units (as disks and GPU memory are sold), three significant digits or more.
std::string gb(double bytes) {
  if (bytes >= 1e9) return fmt::format("{:.2f} GB", bytes / 1e9);
  if (bytes >= 1e6) return fmt::format("{:.2f} MB", bytes / 1e6);
  return fmt::format("{:.1f} kB", bytes / 1e3);
}

uint64_t replicated_bytes(const Checkpoint& ck, const ShardPlan& plan) {
  uint64_t bytes = 0;
  for (const TensorShard& s : plan.linears)
    if (s.kind == ShardKind::kReplicated) bytes += ck.linear(s.name).stored_bytes();
  for (const TensorShard& s : plan.tensors)
    if (s.kind == ShardKind::kReplicated) bytes += (s.stored_only ? ck.source->tensor(s.name) : ck.tensor(s.name)).nbytes;
  return bytes;
}

}  // namespace

PlanSummary summarize_plan(const Checkpoint& ck, const ShardPlan& plan, std::optional<uint64_t> gpu_memory_bytes) {
  PlanSummary s;
  s.parallel = plan.parallel;
  s.checkpoint_bytes = ck.source ? ck.source->total_bytes() : 0;
  s.context = state_rate(ck.config);
  s.gpu_memory_bytes = gpu_memory_bytes;
  s.notes = plan.notes;
  const uint64_t replicated = replicated_bytes(ck, plan);
  s.fits = gpu_memory_bytes.has_value();
  for (int r = 0; r < plan.parallel.tensor_parallel_size; ++r) {
    RankSummary rank;
    rank.rank = r;
    for (const ByteRuns& range : rank_byte_ranges(ck, plan, r)) rank.weight_bytes += range.bytes();
    rank.replicated_bytes = replicated;
    rank.kv_bytes_per_token = s.context.bytes_per_token;
    if (gpu_memory_bytes) {
      const uint64_t needed = rank.weight_bytes + s.context.bytes_per_sequence;
      if (needed > *gpu_memory_bytes) {
        s.fits = false;
        rank.context_tokens = 0;
      } else {
        const double spare = static_cast<double>(*gpu_memory_bytes - needed);
        rank.context_tokens =
            s.context.bytes_per_token > 0 ? static_cast<int64_t>(std::floor(spare / s.context.bytes_per_token)) : 0;
      }
    }
    s.ranks.push_back(rank);
  }
  return s;
}

nlohmann::json plan_json(const PlanSummary& s) {
  nlohmann::json j;
  j["tensor_parallel_size"] = s.parallel.tensor_parallel_size;
  j["expert_parallel"] = s.parallel.expert_parallel;
  j["checkpoint_bytes"] = s.checkpoint_bytes;
  j["state_bytes_per_sequence"] = s.context.bytes_per_sequence;
  nlohmann::json ranks = nlohmann::json::array();
  for (const RankSummary& r : s.ranks) {
    nlohmann::json e = {{"rank", r.rank},
                        {"weight_bytes", r.weight_bytes},
                        {"replicated_bytes", r.replicated_bytes},
                        {"kv_bytes_per_token", r.kv_bytes_per_token}};
    if (s.gpu_memory_bytes) e["context_tokens"] = r.context_tokens;
    ranks.push_back(e);
  }
  j["ranks"] = ranks;
  if (s.gpu_memory_bytes) {
    j["gpu_memory_bytes"] = *s.gpu_memory_bytes;
    j["fits"] = s.fits;
  }
  j["notes"] = s.notes;
  return j;
}

std::string plan_text(const PlanSummary& s, const std::string& model_dir) {
  std::string out = fmt::format("{}: {} of tensors; tensor parallel {}, expert parallel {}\n", model_dir,
                                gb(double(s.checkpoint_bytes)), s.parallel.tensor_parallel_size,
                                s.parallel.expert_parallel ? "on (routed experts by range)" : "off (experts by columns)");
  out += fmt::format("state per sequence: {:.1f} MB fixed (windows, partial windows) + {:.0f} bytes per token of "
                     "context, on every rank (float32; one K=V head that every query head reads)\n",
                     double(s.context.bytes_per_sequence) / 1e6, s.context.bytes_per_token);
  out += fmt::format("{:>5}  {:>12}  {:>14}", "rank", "weights", "of which whole");
  if (s.gpu_memory_bytes) out += fmt::format("  {:>16}", "context tokens");
  out += "\n";
  for (const RankSummary& r : s.ranks) {
    out += fmt::format("{:>5}  {:>12}  {:>14}", r.rank, gb(double(r.weight_bytes)), gb(double(r.replicated_bytes)));
    if (s.gpu_memory_bytes) out += fmt::format("  {:>16}", r.context_tokens);
    out += "\n";
  }
  if (s.gpu_memory_bytes) {
    const auto smallest = std::min_element(s.ranks.begin(), s.ranks.end(), [](const auto& a, const auto& b) {
      return a.context_tokens < b.context_tokens;
    });
    out += s.fits ? fmt::format("fits in {} per GPU: {} tokens of context in all (before activations and workspace)\n",
                                gb(double(*s.gpu_memory_bytes)), smallest->context_tokens)
                  : fmt::format("does NOT fit in {} per GPU: rank {} needs {} for weights and one sequence's windows\n",
                                gb(double(*s.gpu_memory_bytes)), smallest->rank,
                                gb(double(smallest->weight_bytes + s.context.bytes_per_sequence)));
  }
  for (const std::string& note : s.notes) out += "note: " + note + "\n";
  return out;
}

}  // namespace fp4serve
