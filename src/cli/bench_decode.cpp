// `fp4serve bench decode`: decode speed of a checkpoint (--model DIR) or of the built-in
// synthetic DeepSeek-V4 with V4-Flash's per-layer proportions (>= 2 GB of FP8 + MXFP4
// weights), `--batch B` sequences sharing each step, next to the physical floor: the
// distinct weight bytes a step reads (every projection, the routed experts the step's
// rows actually chose, counted once however many rows chose them) / the memory bandwidth
// measured in the same run (CPU: all threads summing a buffer larger than the caches;
// GPU: a device-to-device copy, counting the bytes read and written).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_isa.h"
#include "backend/cpu/peak_flops.h"
#include "backend/cpu/thread_pool.h"
#include "base/error.h"
#include "cli/bench_floors.h"
#include "cli/bench_model.h"
#include "cli/bench_profile.h"
#include "cli/command.h"

namespace fp4serve::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchDecodeOptions {
  BenchModelFlags model;
  int64_t prompt = 16;
  int64_t tokens = 8;
  int64_t batch = 1;
  double bandwidth_gb = 1.0;  // size of the bandwidth probe buffer
  bool profile = false;
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int bench_decode(const BenchDecodeOptions& o) {
  FP4SERVE_CHECK(o.tokens > 0 && o.prompt > 0, "--tokens and --prompt must be positive");
  FP4SERVE_CHECK(o.batch > 0, "--batch must be positive");
  if (runs_on_ranks(o.model)) {
    FP4SERVE_CHECK(o.batch == 1 && !o.profile, "bench decode over ranks (--tensor-parallel-size, --enable-expert-parallel) "
                                               "runs batch 1 without --profile");
    return bench_decode_sharded(o.model, o.prompt, o.tokens, o.bandwidth_gb);
  }
  o.model.apply_threads();
  // The prompt, 2 warm-up steps, the timed steps and as many profiled ones.
  const int64_t context = o.prompt + 2 + o.tokens * (o.profile ? 2 : 1) + 8;
  const std::unique_ptr<BenchModel> m = open_bench_model(o.model, context, o.batch, std::max(o.prompt * o.batch, o.batch));
  Model& model = *m->model;
  MeteredBackend& metered = *m->metered;
  const ModelConfig& config = model.config();
  std::printf("bench decode: %s\n%s\n", m->backend->description().c_str(), m->what.c_str());

  const size_t probe_bytes = static_cast<size_t>(o.bandwidth_gb * 1e9);
  const bool gpu = m->backend->kind() == DeviceKind::kCuda;
  const double bandwidth = gpu ? measure_copy_bandwidth(*m->backend, probe_bytes) : measure_read_bandwidth(probe_bytes);

  // B sequences, each its own prompt (so their routing differs), prefilled in one step.
  std::vector<std::vector<int32_t>> prompts;
  std::vector<StepItem> items;
  for (int64_t s = 0; s < o.batch; ++s) {
    model.create_sequence(static_cast<SequenceId>(s));
    prompts.push_back(bench_prompt(o.prompt, s, config.vocab_size));
  }
  for (int64_t s = 0; s < o.batch; ++s)
    items.push_back(StepItem{static_cast<SequenceId>(s), 0, prompts[static_cast<size_t>(s)], LogitsMode::kLast});
  std::vector<float> logits;
  auto t0 = Clock::now();
  model.forward(items, logits);
  const double prefill_s = seconds_since(t0);

  std::vector<int32_t> next(static_cast<size_t>(o.batch));
  auto pick_next = [&] {  // greedy, per sequence
    for (int64_t s = 0; s < o.batch; ++s) {
      const auto row = logits.begin() + s * config.vocab_size;
      next[static_cast<size_t>(s)] = static_cast<int32_t>(std::max_element(row, row + config.vocab_size) - row);
    }
  };
  pick_next();
  auto step = [&] {
    items.clear();
    for (int64_t s = 0; s < o.batch; ++s)
      items.push_back(StepItem{static_cast<SequenceId>(s), model.position(static_cast<SequenceId>(s)),
                               std::span<const int32_t>(&next[static_cast<size_t>(s)], 1), LogitsMode::kLast});
    logits.clear();
    model.forward(items, logits);
    pick_next();
  };
  for (int warm = 0; warm < 2; ++warm) step();  // the first steps page in and size scratch buffers

  std::vector<double> step_s, step_bytes, step_flops;
  MeteredBackend::Window last;
  for (int64_t i = 0; i < o.tokens; ++i) {
    metered.reset();
    t0 = Clock::now();
    step();
    step_s.push_back(seconds_since(t0));
    step_bytes.push_back(static_cast<double>(metered.window().weight_bytes));
    step_flops.push_back(metered.window().linear_flops);
    last = metered.window();
  }
  const double med = median(step_s), bytes = median(step_bytes);
  const double tps = static_cast<double>(o.batch) / med;
  const double floor_tps = static_cast<double>(o.batch) * bandwidth / bytes;

  // The weights of the last step alone, one linear call each with the step's rows: what
  // the kernels and the thread pool cost without the rest of the step.
  int64_t widest = 0;
  for (const LinearWeight* w : last.weights) widest = std::max(widest, w->in_features);
  int64_t tallest = config.vocab_size;
  for (const LinearWeight* w : last.weights) tallest = std::max(tallest, w->out_features);
  std::vector<float> host_x(static_cast<size_t>(widest * o.batch));
  for (size_t i = 0; i < host_x.size(); ++i) host_x[i] = static_cast<float>(static_cast<int>(i % 7) - 3) * 0.25f;
  const DeviceBuffer x = m->backend->allocate(host_x.size() * sizeof(float));
  const DeviceBuffer y = m->backend->allocate(static_cast<size_t>(tallest * o.batch) * sizeof(float));
  m->backend->copy_to_device(x.data(), host_x.data(), host_x.size() * sizeof(float));
  std::vector<double> alone_s;
  for (int rep = 0; rep < 5; ++rep) {
    t0 = Clock::now();
    for (const LinearWeight* w : last.weights) {
      LinearJob job = linear_job(w, x.as<float>(), o.batch, y.as<float>(),
                                 model.numerics().quantizes_input(w->encoding) ? ActivationQuant::kFP8Block128 : ActivationQuant::kNone,
                                 true);
      m->backend->linear(std::span<const LinearJob>(&job, 1));
    }
    m->backend->synchronize();
    alone_s.push_back(seconds_since(t0));
  }

  std::printf("prefill %lld x %lld tokens: %.2f s = %.1f tokens/s\n", static_cast<long long>(o.batch),
              static_cast<long long>(o.prompt), prefill_s, static_cast<double>(o.prompt * o.batch) / prefill_s);
  std::printf("decode batch %lld: median %.1f ms/step (min %.1f, max %.1f over %zu steps) = %.2f tokens/s\n",
              static_cast<long long>(o.batch), med * 1e3, *std::min_element(step_s.begin(), step_s.end()) * 1e3,
              *std::max_element(step_s.begin(), step_s.end()) * 1e3, step_s.size(), tps);
  std::printf("floor: %.0f bytes = %.3f GB read per step (%zu distinct weights%s) / %.2f GB/s measured %s bandwidth = %.2f tokens/s\n",
              bytes, bytes / 1e9, last.weights.size(), last.experts_observed ? ", the routed experts the rows chose" : ", routed experts estimated",
              bandwidth / 1e9, gpu ? "device copy" : "read", floor_tps);
  std::printf("achieved %.0f%% of the floor (%.2f GB/s of weights)\n", 100.0 * tps / floor_tps, bytes / med / 1e9);
  if (!gpu) {
    // At larger batches the step can be bound by arithmetic instead: its projection FLOPs
    // over the peak of the kernels' multiply instruction (bench prefill's floor).
    const cpu::PeakFlops peak = cpu::measure_peak_flops(cpu::active_isa(), cpu::ThreadPool::global());
    const double flops = median(step_flops), compute_tps = static_cast<double>(o.batch) * peak.flops_per_second / flops;
    std::printf("compute floor: %.2f GFLOP per step / %.1f GFLOP/s measured peak of %s = %.2f tokens/s (%.0f%% of it)\n",
                flops / 1e9, peak.flops_per_second / 1e9, peak.instruction.c_str(), compute_tps, 100.0 * tps / compute_tps);
  }
  std::printf("the %zu projections of a step alone: %.1f ms (%.0f%% of the step)\n", last.weights.size(), median(alone_s) * 1e3,
              100.0 * median(alone_s) / med);

  if (o.profile) {
    metered.reset();
    metered.set_profiling(true);
    std::vector<double> profiled_s;
    for (int64_t i = 0; i < o.tokens; ++i) {
      t0 = Clock::now();
      step();
      profiled_s.push_back(seconds_since(t0));
    }
    metered.set_profiling(false);
    print_profile(metered, o.tokens, median(profiled_s), bandwidth);
  }
  return 0;
}

const RegisterBenchmark bench_decode_command{Command{
    "decode", "Decode tokens/s of a checkpoint (--model) or a synthetic V4-Flash-proportioned model, beside the memory-bandwidth floor",
    [](CLI::App& sub) -> std::function<int()> {
      auto o = std::make_shared<BenchDecodeOptions>();
      o->model.add_to(sub);
      sub.add_option("--prompt", o->prompt, "Prompt tokens per sequence prefilled before decoding (default 16)");
      sub.add_option("--tokens", o->tokens, "Decode steps timed (default 8)");
      sub.add_option("--batch", o->batch, "Sequences decoded together, one token each per step (default 1)")
          ->check(CLI::Range(1, 4096));
      sub.add_option("--bandwidth-gb", o->bandwidth_gb, "Bandwidth probe buffer in GB (default 1)");
      sub.add_flag("--profile", o->profile, "Then time the same number of steps op by op and projection by projection");
      return [o] { return bench_decode(*o); };
    }}};

}  // namespace
}  // namespace fp4serve::cli
