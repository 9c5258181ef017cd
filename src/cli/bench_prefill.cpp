// `fp4serve bench prefill`: one prompt of --prompt-tokens tokens in one forward call, on a
// checkpoint (--model DIR) or the built-in synthetic V4-Flash-proportioned model, beside
// the compute floor: the FLOPs of every projection the prompt runs (the routed experts
// each row chose; attention's own arithmetic is not counted) / the peak FLOP rate of the
// instruction the CPU kernels multiply with, measured on all threads in the same run.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "backend/cpu/cpu_isa.h"
#include "backend/cpu/peak_flops.h"
#include "backend/cpu/thread_pool.h"
#include "base/error.h"
#include "cli/bench_model.h"
#include "cli/bench_profile.h"
#include "cli/command.h"

namespace fp4serve::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchPrefillOptions {
  BenchModelFlags model;
  int64_t prompt_tokens = 512;
  int64_t repeats = 3;
  bool profile = false;
};

int bench_prefill(const BenchPrefillOptions& o) {
  FP4SERVE_CHECK(o.prompt_tokens > 0, "--prompt-tokens must be positive");
  FP4SERVE_CHECK(o.repeats > 0, "--repeats must be positive");
  FP4SERVE_CHECK(!runs_on_ranks(o.model), "bench prefill runs on one device: --tensor-parallel-size and "
                                          "--enable-expert-parallel are for bench decode, generate, logits and serve");
  o.model.apply_threads();
  const std::unique_ptr<BenchModel> m = open_bench_model(o.model, o.prompt_tokens + 8, 1, o.prompt_tokens);
  Model& model = *m->model;
  MeteredBackend& metered = *m->metered;
  std::printf("bench prefill: %s\n%s\n", m->backend->description().c_str(), m->what.c_str());
  const bool cpu = m->backend->kind() == DeviceKind::kCpu;
  cpu::PeakFlops peak;
  if (cpu) peak = cpu::measure_peak_flops(cpu::active_isa(), cpu::ThreadPool::global());

  const std::vector<int32_t> prompt = bench_prompt(o.prompt_tokens, 0, model.config().vocab_size);
  std::vector<double> seconds;
  double flops = 0;
  std::vector<float> logits;
  // One untimed run first: it sizes the scratch buffers and pages the weights in.
  for (int64_t r = 0; r <= o.repeats; ++r) {
    const SequenceId id = static_cast<SequenceId>(r);
    model.create_sequence(id);
    metered.reset();
    logits.clear();
    const StepItem item{id, 0, prompt, LogitsMode::kLast};
    const auto t0 = Clock::now();
    model.forward(std::span<const StepItem>(&item, 1), logits);
    m->backend->synchronize();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    model.free_sequence(id);
    if (r > 0) seconds.push_back(s);
    flops = metered.window().linear_flops;
  }
  std::sort(seconds.begin(), seconds.end());
  const double med = seconds[seconds.size() / 2];
  const double rate = flops / med;
  std::printf("prefill %lld tokens: median %.3f s (min %.3f, max %.3f over %zu runs) = %.1f tokens/s\n",
              static_cast<long long>(o.prompt_tokens), med, seconds.front(), seconds.back(), seconds.size(),
              static_cast<double>(o.prompt_tokens) / med);
  std::printf("projection FLOPs: %.0f = %.1f GFLOP (%.2f GFLOP per token%s) = %.1f GFLOP/s\n", flops, flops / 1e9,
              flops / 1e9 / static_cast<double>(o.prompt_tokens),
              metered.window().experts_observed ? ", the routed experts the rows chose" : ", routed experts estimated", rate / 1e9);
  if (cpu) {
    std::printf("floor: %.1f GFLOP / %.1f GFLOP/s measured peak of %s (%s, %d threads) = %.3f s = %.1f tokens/s\n", flops / 1e9,
                peak.flops_per_second / 1e9, peak.instruction.c_str(), std::string(cpu::isa_name(cpu::active_isa())).c_str(),
                cpu::ThreadPool::global().size(), flops / peak.flops_per_second,
                static_cast<double>(o.prompt_tokens) * peak.flops_per_second / flops);
    std::printf("achieved %.0f%% of the peak\n", 100.0 * rate / peak.flops_per_second);
  } else {
    std::printf("floor: no peak probe on this device (the probe measures the CPU kernels' instruction)\n");
  }
  if (o.profile) {
    const SequenceId id = static_cast<SequenceId>(o.repeats + 1);
    model.create_sequence(id);
    metered.reset();
    metered.set_profiling(true);
    logits.clear();
    const StepItem item{id, 0, prompt, LogitsMode::kLast};
    const auto t0 = Clock::now();
    model.forward(std::span<const StepItem>(&item, 1), logits);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    metered.set_profiling(false);
    print_profile(metered, 1, s, 0.0);
  }
  return 0;
}

const RegisterBenchmark bench_prefill_command{Command{
    "prefill", "Prefill tokens/s of a checkpoint (--model) or a synthetic V4-Flash-proportioned model, beside the peak-FLOP floor",
    [](CLI::App& sub) -> std::function<int()> {
      auto o = std::make_shared<BenchPrefillOptions>();
      o->model.add_to(sub);
      sub.add_option("--prompt-tokens", o->prompt_tokens, "Prompt length, run in one forward call (default 512)")
          ->check(CLI::Range(1, 1 << 20));
      sub.add_option("--repeats", o->repeats, "Timed prefills, each on a fresh sequence, after one untimed (default 3)")
          ->check(CLI::Range(1, 1000));
      sub.add_flag("--profile", o->profile, "Then one more prefill, timed op by op and projection by projection");
      return [o] { return bench_prefill(*o); };
    }}};

}  // namespace
}  // namespace fp4serve::cli
