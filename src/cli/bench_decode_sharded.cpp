// `bench decode --tensor-parallel-size N [--enable-expert-parallel]`: batch-1 decode of the
// model split over N in-process ranks (runtime/sharded_model.h: CPU ranks, or GPUs 0..N-1
// with --device cuda), beside one device's floor: the weight bytes a token reads from the
// whole model / the bandwidth of rank 0's device measured in the same run (ranks on
// separate GPUs read their parts at once; ranks sharing a device share its bandwidth).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "backend/cuda_probe.h"
#include "base/error.h"
#include "checkpoint/random_checkpoint.h"
#include "cli/bench_floors.h"
#include "cli/bench_model.h"
#include "runtime/sharded_model.h"

namespace fp4serve::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

size_t tensor_bytes(const Checkpoint& c, const std::string& name) {
  auto it = c.tensors.find(name);
  return it == c.tensors.end() ? 0 : it->second.nbytes;
}

// Weight bytes one batch-1 decode token reads: every projection of every layer but the
// routed experts, k routed experts per layer, the mHC matrices and the head.
size_t bytes_per_token(const Checkpoint& c) {
  const ModelConfig& cfg = c.config;
  size_t total = 0;
  for (const auto& [name, w] : c.linears)
    if (name.find(".ffn.experts.") == std::string::npos) total += w.stored_bytes();
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    size_t expert = 0;
    for (const char* w : {"w1", "w2", "w3"}) expert += c.linears.at(p + "ffn.experts.0." + w).stored_bytes();
    total += static_cast<size_t>(cfg.experts_per_token) * expert;
    total += tensor_bytes(c, p + "hc_attn_fn") + tensor_bytes(c, p + "hc_ffn_fn");
  }
  return total + tensor_bytes(c, "hc_head_fn") + static_cast<size_t>(cfg.hidden_size) * 4;
}

}  // namespace

bool runs_on_ranks(const BenchModelFlags& flags) {
  EngineOptions options;
  flags.engine.apply(options);
  return options.tensor_parallel_size > 1 || options.expert_parallel;
}

int bench_decode_sharded(const BenchModelFlags& flags, int64_t prompt_tokens, int64_t tokens, double bandwidth_gb) {
  EngineOptions options;
  flags.engine.apply(options);
  flags.apply_threads();
  const bool cuda =
      options.device == DeviceChoice::kCuda || (options.device == DeviceChoice::kAuto && cuda_device_count() > 0);
  const std::unique_ptr<Backend> probe = make_backend(cuda ? DeviceKind::kCuda : DeviceKind::kCpu);
  const std::string device = fmt::format("{} ranks (tensor parallel{}), each {}", options.tensor_parallel_size,
                                         options.expert_parallel ? ", expert parallel" : "", probe->description());
  std::fprintf(stderr, "device: %s\n", device.c_str());
  std::printf("bench decode: %s\n", device.c_str());

  Checkpoint ckpt;
  if (flags.model_dir.empty()) {
    RandomCheckpointOptions random;
    random.seed = 1234;
    random.values = RandomValues::kCodes;
    ckpt = random_checkpoint(with_draft(flash_proportioned_config(flags.shape), DraftKind::kNone), random);
  } else {
    LoadOptions load;
    load.show_progress = false;
    load.page_in = false;  // each rank reads its own byte ranges
    ckpt = load_checkpoint(flags.model_dir, load);
  }
  const ModelConfig& config = ckpt.config;
  const int64_t context = prompt_tokens + tokens + 8;
  ShardedModelOptions so;
  so.parallel = ParallelConfig{options.tensor_parallel_size, options.expert_parallel};
  so.device = cuda ? DeviceKind::kCuda : DeviceKind::kCpu;
  so.model = ModelOptions{options.act_quant, context};
  so.max_step_tokens = prompt_tokens;
  so.memory_utilization = options.memory_utilization;
  ShardedModel model(ckpt, so);

  const size_t per_token = bytes_per_token(ckpt);
  const size_t probe_bytes = static_cast<size_t>(bandwidth_gb * 1e9);
  const double bandwidth = cuda ? measure_copy_bandwidth(*probe, probe_bytes) : measure_read_bandwidth(probe_bytes);
  const double floor_tps = bandwidth / static_cast<double>(per_token);

  constexpr SequenceId kSequence = 0;
  model.on_every_rank([&](int, Model& m) { m.create_sequence(kSequence); });
  const std::vector<int32_t> prompt = bench_prompt(prompt_tokens, 0, config.vocab_size);
  std::vector<float> logits;
  StepItem in{kSequence, 0, prompt, LogitsMode::kLast};
  auto t0 = Clock::now();
  model.forward(std::span<const StepItem>(&in, 1), logits);
  const double prefill_s = seconds_since(t0);
  int32_t token = 0;
  std::vector<double> step_s;
  for (int64_t i = -2; i < tokens; ++i) {  // two warm-up steps page in and size scratch buffers
    const auto last = logits.end() - config.vocab_size;
    token = static_cast<int32_t>(std::max_element(last, logits.end()) - last);
    logits.clear();
    in = StepItem{kSequence, model.rank_model(0).position(kSequence), std::span<const int32_t>(&token, 1), LogitsMode::kLast};
    t0 = Clock::now();
    model.forward(std::span<const StepItem>(&in, 1), logits);
    if (i >= 0) step_s.push_back(seconds_since(t0));
  }
  std::sort(step_s.begin(), step_s.end());
  const double median = step_s[step_s.size() / 2], tps = 1.0 / median;
  std::printf("prefill %lld tokens: %.2f s = %.1f tokens/s\n", static_cast<long long>(prompt_tokens), prefill_s,
              static_cast<double>(prompt_tokens) / prefill_s);
  std::printf("decode: median %.1f ms/token (min %.1f, max %.1f over %zu tokens) = %.2f tokens/s\n", median * 1e3,
              step_s.front() * 1e3, step_s.back() * 1e3, step_s.size(), tps);
  std::printf("floor: %.3f GB read per token / %.2f GB/s measured %s bandwidth of one device = %.2f tokens/s\n",
              static_cast<double>(per_token) / 1e9, bandwidth / 1e9, cuda ? "device copy" : "read", floor_tps);
  std::printf("achieved %.0f%% of one device's floor (%.2f GB/s of weights)\n", 100.0 * tps / floor_tps,
              static_cast<double>(per_token) * tps / 1e9);
  return 0;
}

}  // namespace fp4serve::cli
