// `fp4serve bench decode`: batch-1 decode speed of a synthetic DeepSeek-V4 with
// V4-Flash's per-layer proportions (>= 2 GB of FP8 + MXFP4 weights), next to its
// physical floor: bytes of weights one token reads / memory bandwidth measured in the
// same run (on the CPU all threads streaming a buffer larger than the caches; on a GPU a
// device-to-device copy, counting the bytes read and written).
#include <algorithm>
#include <chrono>
#include <functional>
#include <cstdio>
#include <memory>
#include <numeric>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/thread_pool.h"
#include "base/error.h"
#include "cli/command.h"
#include "checkpoint/random_checkpoint.h"
#include "checkpoint/test_model.h"
#include "cli/engine_flags.h"
#include "model/model.h"
#include "backend/cuda_probe.h"
#include "runtime/memory_plan.h"
#include "runtime/sharded_model.h"

namespace fp4serve::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchDecodeOptions {
  FlashShape shape;
  int64_t prompt = 16;
  int64_t tokens = 8;
  double bandwidth_gb = 1.0;  // size of the bandwidth probe buffer
  EngineFlags engine;
};

std::unique_ptr<Backend> start_backend(DeviceChoice choice) {
  switch (choice) {
    case DeviceChoice::kCpu: return make_backend(DeviceKind::kCpu);
    case DeviceChoice::kCuda: return make_backend(DeviceKind::kCuda);
    case DeviceChoice::kAuto: break;
  }
  return make_auto_backend();
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Read bandwidth in bytes/s: the best of a few passes of all threads summing a buffer.
double measure_read_bandwidth(size_t bytes) {
  std::vector<uint64_t> buffer(bytes / sizeof(uint64_t));
  auto& pool = cpu::ThreadPool::global();
  const int64_t n = static_cast<int64_t>(buffer.size()), chunk = 1 << 16;
  pool.parallel_for((n + chunk - 1) / chunk, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c)
      for (int64_t i = c * chunk; i < std::min(n, (c + 1) * chunk); ++i) buffer[static_cast<size_t>(i)] = static_cast<uint64_t>(i);
  });
  double best = 0;
  std::vector<uint64_t> sums(static_cast<size_t>((n + chunk - 1) / chunk));
  for (int pass = 0; pass < 5; ++pass) {
    const auto t0 = Clock::now();
    pool.parallel_for((n + chunk - 1) / chunk, 1, [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c) {
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        const uint64_t* p = buffer.data() + c * chunk;
        const int64_t len = std::min(chunk, n - c * chunk);
        for (int64_t i = 0; i + 4 <= len; i += 4) s0 += p[i], s1 += p[i + 1], s2 += p[i + 2], s3 += p[i + 3];
        sums[static_cast<size_t>(c)] = s0 + s1 + s2 + s3;
      }
    });
    best = std::max(best, static_cast<double>(bytes) / seconds_since(t0));
  }
  volatile uint64_t sink = std::accumulate(sums.begin(), sums.end(), uint64_t{0});
  (void)sink;
  return best;
}

// A GPU's copy bandwidth in bytes/s (read + write): the best of a few device-to-device
// copies of a buffer far larger than the L2.
double measure_copy_bandwidth(Backend& backend, size_t bytes) {
  const DeviceBuffer a = backend.allocate(bytes), b = backend.allocate(bytes);
  backend.fill(a.as<float>(), static_cast<int64_t>(bytes / sizeof(float)), 1.0f);
  backend.copy_on_device(b.data(), a.data(), bytes);  // warm-up
  backend.synchronize();
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    const auto t0 = Clock::now();
    backend.copy_on_device(b.data(), a.data(), bytes);
    backend.synchronize();
    best = std::max(best, 2.0 * static_cast<double>(bytes) / seconds_since(t0));
  }
  return best;
}

size_t tensor_bytes(const Checkpoint& c, const std::string& name) {
  auto it = c.tensors.find(name);
  return it == c.tensors.end() ? 0 : it->second.nbytes;
}

// Weight bytes one batch-1 decode token reads: every projection of every layer but
// the routed experts, k routed experts per layer, the mHC matrices and the head.
size_t bytes_per_token(const Checkpoint& c) {
  const ModelConfig& cfg = c.config;
  size_t total = 0;
  for (const auto& [name, w] : c.linears) {
    if (name.find(".ffn.experts.") == std::string::npos) total += w.stored_bytes();
  }
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    const std::string e0 = p + "ffn.experts.0.";
    size_t expert = 0;
    for (const char* w : {"w1", "w2", "w3"}) expert += c.linears.at(e0 + w).stored_bytes();
    total += static_cast<size_t>(cfg.experts_per_token) * expert;
    total += tensor_bytes(c, p + "hc_attn_fn") + tensor_bytes(c, p + "hc_ffn_fn");
  }
  return total + tensor_bytes(c, "hc_head_fn") + static_cast<size_t>(cfg.hidden_size) * 4;
}

// The model decoded: a Model on one backend, or one split over ranks (--tensor-parallel-size).
struct Decoder {
  std::function<void(SequenceId)> create;
  std::function<int64_t(SequenceId)> position;
  std::function<void(std::span<const StepItem>, std::vector<float>&)> forward;
};

int bench_decode(const BenchDecodeOptions& o) {
  FP4SERVE_CHECK(o.tokens > 0 && o.prompt > 0, "--tokens and --prompt must be positive");
  EngineOptions flags;
  o.engine.apply(flags);
  const bool sharded = flags.tensor_parallel_size > 1 || flags.expert_parallel;
  const bool cuda = flags.device == DeviceChoice::kCuda || (flags.device == DeviceChoice::kAuto && cuda_device_count() > 0);
  // Under tensor parallelism this backend is rank 0's device, for the bandwidth probe only.
  const std::unique_ptr<Backend> backend =
      sharded ? make_backend(cuda ? DeviceKind::kCuda : DeviceKind::kCpu) : start_backend(flags.device);
  const std::string device = sharded ? fmt::format("{} ranks (tensor parallel{}), each {}", flags.tensor_parallel_size,
                                                   flags.expert_parallel ? ", expert parallel" : "", backend->description())
                                     : backend->description();
  std::fprintf(stderr, "device: %s\n", device.c_str());
  std::printf("bench decode: %s\n", device.c_str());

  // make-test-model's "flash" preset at this size, without a draft, filled with random codes.
  const ModelConfig config = with_draft(flash_proportioned_config(o.shape), DraftKind::kNone);
  auto t0 = Clock::now();
  RandomCheckpointOptions random;
  random.seed = 1234;
  random.values = RandomValues::kCodes;
  const Checkpoint ckpt = random_checkpoint(config, random);
  size_t weights = 0;
  for (const auto& [n, w] : ckpt.linears) weights += w.stored_bytes();
  for (const auto& [n, t] : ckpt.tensors) weights += t.nbytes;
  std::printf("synthetic model: %lld layers, hidden %lld, %lld experts (top-%lld), vocab %lld: %.2f GB of weights (made in %.1f s)\n",
              static_cast<long long>(config.num_layers), static_cast<long long>(config.hidden_size),
              static_cast<long long>(config.n_routed_experts), static_cast<long long>(config.experts_per_token),
              static_cast<long long>(config.vocab_size), static_cast<double>(weights) / 1e9, seconds_since(t0));
  const int64_t context = o.prompt + o.tokens + 8;
  std::unique_ptr<Model> single;
  std::unique_ptr<ShardedModel> split;
  Decoder model;
  if (sharded) {
    ShardedModelOptions so;
    so.parallel = ParallelConfig{flags.tensor_parallel_size, flags.expert_parallel};
    so.device = cuda ? DeviceKind::kCuda : DeviceKind::kCpu;
    so.model = ModelOptions{flags.act_quant, context};
    so.max_step_tokens = o.prompt;
    so.memory_utilization = flags.memory_utilization;
    split = std::make_unique<ShardedModel>(ckpt, so);
    ShardedModel& s = *split;
    model.create = [&s](SequenceId id) { s.on_every_rank([&](int, Model& m) { m.create_sequence(id); }); };
    model.position = [&s](SequenceId id) { return s.rank_model(0).position(id); };
    model.forward = [&s](std::span<const StepItem> items, std::vector<float>& logits) { s.forward(items, logits); };
  } else {
    const MemoryPlan plan = plan_memory(*backend, config, ckpt.linears, ckpt.tensors, state_layout(config, context).slot_bytes(),
                                        1, o.prompt, flags.memory_utilization);
    check_fits(plan, backend->description(), 1, context, flags.memory_utilization);
    single = std::make_unique<Model>(*backend, config, ckpt.linears, ckpt.tensors, ModelOptions{flags.act_quant, context});
    Model& m = *single;
    model.create = [&m](SequenceId id) { m.create_sequence(id); };
    model.position = [&m](SequenceId id) { return m.position(id); };
    model.forward = [&m](std::span<const StepItem> items, std::vector<float>& logits) { m.forward(items, logits); };
  }
  const size_t per_token = bytes_per_token(ckpt);

  const size_t probe_bytes = static_cast<size_t>(o.bandwidth_gb * 1e9);
  const bool gpu = backend->kind() == DeviceKind::kCuda;
  const double bandwidth = gpu ? measure_copy_bandwidth(*backend, probe_bytes) : measure_read_bandwidth(probe_bytes);
  const double floor_tps = bandwidth / static_cast<double>(per_token);

  constexpr SequenceId kSequence = 0;
  model.create(kSequence);
  std::vector<int32_t> prompt(static_cast<size_t>(o.prompt));
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 7919 + 11) % static_cast<size_t>(config.vocab_size));
  std::vector<float> logits;
  t0 = Clock::now();
  StepItem in{kSequence, 0, prompt, LogitsMode::kLast};
  model.forward(std::span<const StepItem>(&in, 1), logits);
  const double prefill_s = seconds_since(t0);
  auto next_token = [&] {
    const auto last = logits.end() - config.vocab_size;
    return static_cast<int32_t>(std::max_element(last, logits.end()) - last);
  };
  int32_t token = next_token();
  for (int warm = 0; warm < 2; ++warm) {  // first steps page in and size scratch buffers
    logits.clear();
    in = StepItem{kSequence, model.position(kSequence), std::span<const int32_t>(&token, 1), LogitsMode::kLast};
    model.forward(std::span<const StepItem>(&in, 1), logits);
    token = next_token();
  }
  std::vector<double> step_s;
  for (int64_t i = 0; i < o.tokens; ++i) {
    logits.clear();
    in = StepItem{kSequence, model.position(kSequence), std::span<const int32_t>(&token, 1), LogitsMode::kLast};
    t0 = Clock::now();
    model.forward(std::span<const StepItem>(&in, 1), logits);
    step_s.push_back(seconds_since(t0));
    token = next_token();
  }
  std::sort(step_s.begin(), step_s.end());
  const double median = step_s[step_s.size() / 2];
  const double tps = 1.0 / median;
  std::printf("prefill %lld tokens: %.2f s = %.1f tokens/s\n", static_cast<long long>(o.prompt), prefill_s,
              static_cast<double>(o.prompt) / prefill_s);
  std::printf("decode: median %.1f ms/token (min %.1f, max %.1f over %zu tokens) = %.2f tokens/s\n", median * 1e3,
              step_s.front() * 1e3, step_s.back() * 1e3, step_s.size(), tps);
  std::printf("floor: %.3f GB read per token / %.2f GB/s measured %s bandwidth = %.2f tokens/s%s\n",
              static_cast<double>(per_token) / 1e9, bandwidth / 1e9, gpu ? "device copy" : "read", floor_tps,
              sharded ? " (one device's; ranks on separate GPUs share the bytes)" : "");
  std::printf("achieved %.0f%% of the floor (%.2f GB/s of weights)\n", 100.0 * tps / floor_tps,
              static_cast<double>(per_token) * tps / 1e9);
  if (sharded) return 0;  // the projections below run on one backend, not on the ranks

  // The same token's projections alone (every linear a decode step runs, k experts a
  // layer, one call each): what the kernels and the thread pool cost without the rest.
  std::vector<const LinearWeight*> projections;
  for (const auto& [name, w] : ckpt.linears) {
    const auto at = name.find(".ffn.experts.");
    if (at == std::string::npos || std::stoll(name.substr(at + 13)) < config.experts_per_token) projections.push_back(&w);
  }
  std::vector<float> host_x(65536, 0.0f);
  for (size_t i = 0; i < host_x.size(); ++i) host_x[i] = static_cast<float>(static_cast<int>(i % 7) - 3) * 0.25f;
  const DeviceBuffer x = backend->allocate(host_x.size() * sizeof(float));
  const DeviceBuffer y = backend->allocate(static_cast<size_t>(std::max<int64_t>(config.vocab_size, 65536)) * sizeof(float));
  backend->copy_to_device(x.data(), host_x.data(), host_x.size() * sizeof(float));
  std::vector<double> alone_s;
  for (int rep = 0; rep < 5; ++rep) {
    t0 = Clock::now();
    for (const LinearWeight* w : projections) {
      LinearJob job;
      job.weight = w;
      job.x = x.as<float>();
      job.rows = 1;
      job.y = y.as<float>();
      backend->linear(std::span<const LinearJob>(&job, 1));
    }
    backend->synchronize();
    alone_s.push_back(seconds_since(t0));
  }
  std::sort(alone_s.begin(), alone_s.end());
  std::printf("the %zu projections of a token alone: %.1f ms (%.0f%% of the step)\n", projections.size(),
              alone_s[alone_s.size() / 2] * 1e3, 100.0 * alone_s[alone_s.size() / 2] / median);
  return 0;
}

const RegisterBenchmark bench_decode_command{Command{
    "decode", "Batch-1 decode tokens/s of a synthetic V4-Flash-proportioned model, beside the memory-bandwidth floor",
    [](CLI::App& sub) -> std::function<int()> {
      auto o = std::make_shared<BenchDecodeOptions>();
      sub.add_option("--layers", o->shape.layers, "Layers (default 6)")->check(CLI::Range(1, 128));
      sub.add_option("--experts", o->shape.experts, "Routed experts per layer (default 16)")->check(CLI::Range(1, 1024));
      sub.add_option("--vocab", o->shape.vocab, "Vocabulary (default 32768)")->check(CLI::Range(2, 1 << 20));
      sub.add_option("--hidden", o->shape.hidden, "Hidden size 4096 (Flash) or 4096/2^k to shrink every dimension")
          ->check(CLI::IsMember({512, 1024, 2048, 4096}));
      sub.add_option("--prompt", o->prompt, "Prompt tokens prefilled (timed) before decoding (default 16)");
      sub.add_option("--tokens", o->tokens, "Decode tokens timed (default 8)");
      sub.add_option("--bandwidth-gb", o->bandwidth_gb, "Bandwidth probe buffer in GB (default 1)");
      o->engine.add_to(sub);
      return [o] { return bench_decode(*o); };
    }}};

}  // namespace
}  // namespace fp4serve::cli
