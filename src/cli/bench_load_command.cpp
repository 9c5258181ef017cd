// `fp4serve bench load MODEL_DIR`: load_checkpoint (plan from headers, parallel
// page-in, scale checks) next to `cat SHARDS > /dev/null` on the same files, in
// the same page-cache state.
#include <fcntl.h>
#include <sys/mman.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <vector>

#include "base/error.h"
#include "checkpoint/checkpoint.h"
#include "cli/command.h"

namespace fp4serve::cli {
namespace {

struct BenchLoadArgs {
  std::string model_dir;
  unsigned threads = 0;
  int rounds = 2;
  bool evict = false;
};

std::vector<std::string> shard_files(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.path().extension() == ".safetensors") files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  if (files.empty()) fail("{}: no .safetensors files", dir);
  return files;
}

// Asks the kernel to drop the files' cached pages (clean pages go; no root needed).
void evict(const std::vector<std::string>& files) {
  for (const auto& f : files) {
    const int fd = ::open(f.c_str(), O_RDONLY);
    if (fd < 0) fail("{}: cannot open", f);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

// Fraction of the files' pages in the page cache (mincore), so that a failed eviction shows.
double cached_fraction(const std::vector<std::string>& files) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  uint64_t resident = 0, pages = 0;
  for (const auto& f : files) {
    const int fd = ::open(f.c_str(), O_RDONLY);
    const size_t size = std::filesystem::file_size(f);
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (map == MAP_FAILED) fail("{}: cannot map", f);
    std::vector<unsigned char> flags((size + page - 1) / page);
    if (::mincore(map, size, flags.data()) == 0)
      for (unsigned char flag : flags) resident += flag & 1;
    pages += flags.size();
    ::munmap(map, size);
  }
  return pages ? static_cast<double>(resident) / static_cast<double>(pages) : 0.0;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int run_bench_load(const BenchLoadArgs& a) {
  const auto files = shard_files(a.model_dir);
  uint64_t bytes = 0;
  std::string cat = "cat";
  for (const auto& f : files) {
    bytes += std::filesystem::file_size(f);
    cat += " '" + f + "'";
  }
  cat += " > /dev/null";
  const double mb = static_cast<double>(bytes) / 1e6;
  std::printf("%s: %zu shard(s), %.1f MB; page cache %s before each pass\n", a.model_dir.c_str(), files.size(), mb,
              a.evict ? "evicted (POSIX_FADV_DONTNEED)" : "left as is");

  LoadOptions plan_only;
  plan_only.page_in = false;
  plan_only.check_values = false;
  plan_only.show_progress = false;
  plan_only.threads = a.threads;
  auto start = std::chrono::steady_clock::now();
  {
    const Checkpoint planned = load_checkpoint(a.model_dir, plan_only);  // dropped before any eviction
    std::printf("plan from headers (configs, names, shapes, encodings): %.3f s, %zu linears, %zu tensors\n",
                seconds_since(start), planned.linears.size(), planned.tensors.size());
  }

  for (int round = 1; round <= a.rounds; ++round) {
    if (a.evict) evict(files);
    const double cached_before_cat = cached_fraction(files);
    start = std::chrono::steady_clock::now();
    if (std::system(cat.c_str()) != 0) fail("cat failed");
    const double cat_s = seconds_since(start);

    // Each Checkpoint is dropped before the next eviction: mapped pages cannot be evicted.
    auto timed_load = [&](bool check_values, double* cached_before) {
      if (a.evict) evict(files);
      *cached_before = cached_fraction(files);
      LoadOptions options;
      options.show_progress = false;
      options.threads = a.threads;
      options.check_values = check_values;
      const auto t0 = std::chrono::steady_clock::now();
      load_checkpoint(a.model_dir, options);
      return seconds_since(t0);
    };
    double cached_before_load = 0, cached_before_page_in = 0;
    const double load_s = timed_load(true, &cached_before_load);
    const double page_in_s = timed_load(false, &cached_before_page_in);
    std::printf("round %d: cat %.2f s (%.0f MB/s, %.0f%% cached before)   load_checkpoint %.2f s (%.0f MB/s, "
                "%.0f%% cached before; %.2fx cat's time; without scale checks %.2f s, %.0f%% cached before)\n",
                round, cat_s, mb / cat_s, 100 * cached_before_cat, load_s, mb / load_s, 100 * cached_before_load,
                load_s / cat_s, page_in_s, 100 * cached_before_page_in);
  }
  return 0;
}

const RegisterBenchmark bench_load{Command{
    "load", "Checkpoint loading (plan + parallel page-in + checks) next to cat on the same shards",
    [](CLI::App& sub) -> std::function<int()> {
      auto args = std::make_shared<BenchLoadArgs>();
      sub.add_option("MODEL_DIR", args->model_dir, "Checkpoint directory")->required();
      sub.add_option("--threads", args->threads, "Page-in threads (0 = max(8, hardware threads))");
      sub.add_option("--rounds", args->rounds, "Timed rounds")->capture_default_str();
      sub.add_flag("--evict", args->evict, "Drop the shards from the page cache before every timed pass");
      return [args] { return run_bench_load(*args); };
    }}};

}  // namespace
}  // namespace fp4serve::cli
