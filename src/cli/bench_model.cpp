#include "cli/bench_model.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "backend/cpu/thread_pool.h"
#include "base/error.h"
#include "checkpoint/random_checkpoint.h"
#include "model/state_layout.h"
#include "runtime/memory_plan.h"

namespace fp4serve::cli {
namespace {

std::unique_ptr<Backend> start_backend(DeviceChoice choice) {
  switch (choice) {
    case DeviceChoice::kCpu: return make_backend(DeviceKind::kCpu);
    case DeviceChoice::kCuda: return make_backend(DeviceKind::kCuda);
    case DeviceChoice::kAuto: break;
  }
  return make_auto_backend();
}

}  // namespace

void BenchModelFlags::add_to(CLI::App& sub) {
  sub.add_option("--model", model_dir, "Checkpoint directory to measure (default: the built-in synthetic V4-Flash-shaped model)");
  sub.add_option("--layers", shape.layers, "Synthetic model: layers (default 6)")->check(CLI::Range(1, 128));
  sub.add_option("--experts", shape.experts, "Synthetic model: routed experts per layer (default 16)")->check(CLI::Range(1, 1024));
  sub.add_option("--vocab", shape.vocab, "Synthetic model: vocabulary (default 32768)")->check(CLI::Range(2, 1 << 20));
  sub.add_option("--hidden", shape.hidden, "Synthetic model: hidden size 4096 (Flash) or 4096/2^k to shrink every dimension")
      ->check(CLI::IsMember({512, 1024, 2048, 4096}));
  sub.add_option("--threads", threads, "CPU threads (default: FP4SERVE_THREADS, else every hardware thread)")
      ->check(CLI::Range(1, 4096));
  engine.add_to(sub);
}

void BenchModelFlags::apply_threads() const {
  // The pool is sized once, from the environment, when first used.
  if (threads > 0) ::setenv("FP4SERVE_THREADS", std::to_string(threads).c_str(), 1);
}

std::vector<int32_t> bench_prompt(int64_t length, int64_t s, int64_t vocab) {
  std::vector<int32_t> out(static_cast<size_t>(length));
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<int32_t>(((i + static_cast<size_t>(s) * 131) * 7919 + 11) % static_cast<size_t>(vocab));
  return out;
}

std::unique_ptr<BenchModel> open_bench_model(const BenchModelFlags& flags, int64_t context, int64_t sequences,
                                             int64_t step_tokens) {
  EngineOptions options;
  flags.engine.apply(options);
  auto m = std::make_unique<BenchModel>();
  if (!flags.model_dir.empty()) {
    // Before the backend starts: a wrong path should say so, not print a device first.
    FP4SERVE_CHECK(std::filesystem::is_directory(flags.model_dir), "--model {}: no such directory", flags.model_dir);
  }
  m->backend = start_backend(options.device);
  std::fprintf(stderr, "device: %s\n", m->backend->description().c_str());
  const auto t0 = std::chrono::steady_clock::now();
  if (flags.model_dir.empty()) {
    const ModelConfig config = with_draft(flash_proportioned_config(flags.shape), DraftKind::kNone);
    RandomCheckpointOptions random;
    random.seed = 1234;
    random.values = RandomValues::kCodes;
    m->checkpoint = random_checkpoint(config, random);
  } else {
    LoadOptions load;
    load.show_progress = false;
    m->checkpoint = load_checkpoint(flags.model_dir, load);
  }
  const Checkpoint& ckpt = m->checkpoint;
  const ModelConfig& config = ckpt.config;
  size_t weights = 0;
  for (const auto& [n, w] : ckpt.linears) weights += w.stored_bytes();
  for (const auto& [n, t] : ckpt.tensors) weights += t.nbytes;
  char line[512];
  std::snprintf(line, sizeof(line), "%s%s (%s): %lld layers, hidden %lld, %lld experts (top-%lld), vocab %lld: %.3f GB of weights (%s in %.1f s)",
                flags.model_dir.empty() ? "synthetic model" : "model ", flags.model_dir.c_str(), ckpt.layout.c_str(),
                static_cast<long long>(config.num_layers), static_cast<long long>(config.hidden_size),
                static_cast<long long>(config.n_routed_experts), static_cast<long long>(config.experts_per_token),
                static_cast<long long>(config.vocab_size), static_cast<double>(weights) / 1e9,
                flags.model_dir.empty() ? "made" : "loaded",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  m->what = line;
  const MemoryPlan plan = plan_memory(*m->backend, config, ckpt.linears, ckpt.tensors, state_layout(config, context).slot_bytes(),
                                      sequences, step_tokens, options.memory_utilization);
  check_fits(plan, m->backend->description(), sequences, context, options.memory_utilization);
  m->metered = std::make_unique<MeteredBackend>(*m->backend);
  m->model = std::make_unique<Model>(*m->metered, config, ckpt.linears, ckpt.tensors, ModelOptions{options.act_quant, context});
  return m;
}

}  // namespace fp4serve::cli
