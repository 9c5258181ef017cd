// `fp4serve plan MODEL_DIR --tensor-parallel-size N [--enable-expert-parallel]
// [--gpu-memory GB] [--json] [--decode-cost]`: how the checkpoint splits over N GPUs and
// whether it fits, from headers only (no tensor data is read but the scalar NVFP4
// scales); --decode-cost adds the communication cost model of parallel/decode_cost.h.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "base/error.h"
#include "checkpoint/checkpoint.h"
#include "cli/command.h"
#include "io/safetensors.h"
#include "parallel/decode_cost.h"
#include "parallel/plan_report.h"
#include "parallel/shard_plan.h"

namespace fp4serve::cli {
namespace {

struct PlanArgs {
  std::string model_dir;
  int tensor_parallel_size = 1;
  bool expert_parallel = false;
  double gpu_memory_gb = 0;
  bool json = false;
  bool decode_cost = false;
};

int run_plan(const PlanArgs& a) {
  if (a.json && a.decode_cost) fail("--decode-cost prints a table: use it without --json");
  const auto start = std::chrono::steady_clock::now();
  LoadOptions options;
  options.page_in = false;
  options.check_values = false;
  options.show_progress = false;
  const Checkpoint ck = load_checkpoint(a.model_dir, options);
  const ShardPlan plan = plan_shards(ck, ParallelConfig{a.tensor_parallel_size, a.expert_parallel});
  std::optional<uint64_t> memory;
  if (a.gpu_memory_gb != 0) {
    if (!(a.gpu_memory_gb > 0) || !std::isfinite(a.gpu_memory_gb)) fail("--gpu-memory {}: expected a positive number of GB", a.gpu_memory_gb);
    memory = static_cast<uint64_t>(a.gpu_memory_gb * 1e9);
  }
  const PlanSummary summary = summarize_plan(ck, plan, memory);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (a.json) {
    std::printf("%s\n", plan_json(summary).dump(2).c_str());
  } else {
    std::printf("%s", plan_text(summary, a.model_dir).c_str());
  }
  if (a.decode_cost) std::printf("\n%s", decode_cost_text(ck, a.tensor_parallel_size, {1, 8, 64, 256}).c_str());
  std::fprintf(stderr, "planned from headers in %.2f s (%zu shard files)\n", seconds, ck.source->files().size());
  return 0;
}

const RegisterCommand plan{Command{
    "plan", "Split a checkpoint over N GPUs: per-rank weight bytes, state per token, whether it fits (headers only)",
    [](CLI::App& sub) -> std::function<int()> {
      auto args = std::make_shared<PlanArgs>();
      sub.add_option("MODEL_DIR", args->model_dir, "Checkpoint directory (config.json + safetensors)")->required();
      sub.add_option("--tensor-parallel-size,--tp", args->tensor_parallel_size, "Number of GPUs (ranks)")
          ->capture_default_str();
      sub.add_flag("--enable-expert-parallel", args->expert_parallel,
                   "Routed experts whole, by range over the ranks (else split by columns like any linear)");
      sub.add_option("--gpu-memory", args->gpu_memory_gb, "Memory of one GPU in GB (1e9 bytes): say whether it fits");
      sub.add_flag("--json", args->json, "Print one JSON object");
      sub.add_flag("--decode-cost", args->decode_cost,
                   "Also print the decode-step cost model: weights read vs bytes on NVLink and PCIe, TP vs EP");
      return [args] { return run_plan(*args); };
    }}};

}  // namespace
}  // namespace fp4serve::cli
