// `fp4serve bench shard-load MODEL_DIR --tensor-parallel-size N [--enable-expert-parallel]
// [--rank R] [--threads T] [--evict]`: each rank's bytes of the shard plan read by range
// (pread, the way a rank loads its shard), timed beside `cat` of the shard files: bytes
// each rank needs, bytes it requested (runs close together are read through), seconds,
// and what cat takes for that many bytes at its measured rate.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

#include "base/error.h"
#include "checkpoint/checkpoint.h"
#include "cli/command.h"
#include "io/page_cache.h"
#include "io/ranged_read.h"
#include "parallel/shard_plan.h"

namespace fp4serve::cli {
namespace {

struct ShardLoadArgs {
  std::string model_dir;
  int tensor_parallel_size = 2;
  bool expert_parallel = false;
  int rank = -1;
  unsigned threads = 8;
  bool evict = false;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Cuts runs into pieces of at most ~64 MiB, so threads share the work and buffers stay small.
std::vector<ByteRuns> pieces(const std::vector<ByteRuns>& runs) {
  constexpr uint64_t kPiece = uint64_t{64} << 20;
  std::vector<ByteRuns> out;
  for (const ByteRuns& r : runs) {
    if (r.count == 1) {
      for (uint64_t at = 0; at < r.length; at += kPiece)
        out.push_back({r.tensor, r.offset + at, std::min(kPiece, r.length - at), 1, 0});
      continue;
    }
    const uint64_t per = std::max<uint64_t>(1, kPiece / std::max<uint64_t>(r.length, 1));
    for (uint64_t first = 0; first < r.count; first += per)
      out.push_back({r.tensor, r.offset + first * r.stride, r.length, std::min(per, r.count - first), r.stride});
  }
  return out;
}

int run_shard_load(const ShardLoadArgs& a) {
  if (a.threads == 0) fail("--threads must be at least 1");
  LoadOptions headers_only;
  headers_only.page_in = false;
  headers_only.check_values = false;
  headers_only.show_progress = false;
  auto start = std::chrono::steady_clock::now();
  const Checkpoint ck = load_checkpoint(a.model_dir, headers_only);
  const ShardPlan plan = plan_shards(ck, ParallelConfig{a.tensor_parallel_size, a.expert_parallel});
  std::printf("plan from headers: %.2f s; tensor parallel %d, expert parallel %s; %zu shard file(s)\n",
              seconds_since(start), a.tensor_parallel_size, a.expert_parallel ? "on" : "off", ck.source->files().size());
  if (a.rank >= a.tensor_parallel_size) fail("--rank {} is outside [0, {})", a.rank, a.tensor_parallel_size);

  std::string cat = "cat";
  uint64_t file_bytes = 0;
  for (const auto& f : ck.source->files()) {
    cat += " '" + f->path() + "'";
    file_bytes += f->file_size();
  }
  cat += " > /dev/null";
  auto evict_all = [&] {
    for (const auto& f : ck.source->files()) evict_from_page_cache(f->path());
  };
  if (a.evict) evict_all();
  start = std::chrono::steady_clock::now();
  if (std::system(cat.c_str()) != 0) fail("cat failed");
  const double cat_s = seconds_since(start);
  const double cat_rate = static_cast<double>(file_bytes) / cat_s;
  std::printf("cat of all shards: %.1f MB in %.2f s (%.0f MB/s); page cache %s before each pass\n", file_bytes / 1e6,
              cat_s, cat_rate / 1e6, a.evict ? "evicted" : "left as is");
  std::printf("%5s %14s %14s %9s %9s %16s\n", "rank", "needed MB", "requested MB", "seconds", "MB/s", "cat, same bytes");

  for (int r = a.rank < 0 ? 0 : a.rank; r < (a.rank < 0 ? a.tensor_parallel_size : a.rank + 1); ++r) {
    if (a.evict) evict_all();
    const std::vector<ByteRuns> work = pieces(rank_byte_ranges(ck, plan, r));
    RangedReader reader(*ck.source);
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    std::string error;
    start = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < a.threads; ++t) {
      pool.emplace_back([&] {
        std::vector<std::byte> buffer;
        for (size_t i = next++; i < work.size() && !failed; i = next++) {
          buffer.resize(work[i].bytes());
          try {
            reader.read(work[i], buffer.data());
          } catch (const Error& e) {
            if (!failed.exchange(true)) error = e.what();
          }
        }
      });
    }
    for (auto& t : pool) t.join();
    if (failed) throw Error(error);
    const double s = seconds_since(start);
    std::printf("%5d %14.1f %14.1f %9.2f %9.0f %14.2f s\n", r, reader.bytes_asked() / 1e6, reader.bytes_read() / 1e6,
                s, reader.bytes_read() / 1e6 / s, static_cast<double>(reader.bytes_read()) / cat_rate);
  }
  return 0;
}

const RegisterBenchmark bench_shard_load{Command{
    "shard-load", "Each rank's bytes of the shard plan read by range, beside cat of the shards",
    [](CLI::App& sub) -> std::function<int()> {
      auto args = std::make_shared<ShardLoadArgs>();
      sub.add_option("MODEL_DIR", args->model_dir, "Checkpoint directory")->required();
      sub.add_option("--tensor-parallel-size,--tp", args->tensor_parallel_size, "Ranks")->capture_default_str();
      sub.add_flag("--enable-expert-parallel", args->expert_parallel, "Routed experts whole, by range");
      sub.add_option("--rank", args->rank, "Only this rank (default: every rank in turn)");
      sub.add_option("--threads", args->threads, "Reading threads per rank")->capture_default_str();
      sub.add_flag("--evict", args->evict, "Drop the shards from the page cache before cat and before every rank");
      return [args] { return run_shard_load(*args); };
    }}};

}  // namespace
}  // namespace fp4serve::cli
