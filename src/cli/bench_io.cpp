// `fp4serve bench io PATH`: how fast the safetensors reader pages a checkpoint in,
// next to `cat` over the same files in the same run (the physical reference: the
// kernel's plain sequential read). Each is timed cold (file evicted from the page
// cache first) and warm (cached), and each row says how much was cached before.
//
// `fp4serve bench io --make FILE --gb N` writes a test file of about N GB (10^9
// bytes) shaped like NVFP4 linears, through our writer.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "base/error.h"
#include "cli/command.h"
#include "io/page_cache.h"
#include "io/page_in.h"
#include "io/safetensors.h"

extern char** environ;

namespace fp4serve::cli {
namespace {

struct BenchIoOptions {
  std::string path;
  std::string make_path;
  double make_gb = 4.0;
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  bool drop_caches = false;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// NVFP4 linears of K = 16384 (a row: 8192 packed bytes + 1024 E4M3 block scales)
// with their two F32 global scales, up to 4096 rows per layer, as many layers
// as the size asks. All tensors view one buffer of pseudo-random bytes (random,
// so that no filesystem or cache can shortcut zeros); the writer streams it out
// repeatedly, so making a 4 GB file needs only 40 MB of memory.
void make_test_file(const std::string& path, double gigabytes) {
  FP4SERVE_CHECK(gigabytes > 0 && gigabytes <= 1000, "--gb {}: must be in (0, 1000]", gigabytes);
  constexpr int64_t kPackedBytes = 8192, kScaleBytes = 1024, kMaxRows = 4096;
  const auto target = static_cast<int64_t>(gigabytes * 1e9);
  const int64_t total_rows = std::max<int64_t>(1, target / (kPackedBytes + kScaleBytes));
  const int64_t layers = (total_rows + kMaxRows - 1) / kMaxRows;
  const int64_t rows = (total_rows + layers - 1) / layers;

  TensorView random = make_owned_tensor(DType::U8, {rows * kPackedBytes + 8});
  uint64_t state = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i < random.nbytes; ++i) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;  // xorshift64
    mutable_data(random)[i] = static_cast<std::byte>(state >> 56);
  }
  const auto view = [&](DType dtype, std::vector<int64_t> shape) {
    TensorView t = random;
    t.dtype = dtype;
    t.shape = std::move(shape);
    t.nbytes = static_cast<size_t>(t.numel()) * dtype_size(dtype);
    return t;
  };
  std::vector<NamedTensor> tensors;
  for (int64_t layer = 0; layer < layers; ++layer) {
    const std::string prefix = fmt::format("model.layers.{}.mlp.down_proj.", layer);
    tensors.push_back({prefix + "weight", view(DType::U8, {rows, kPackedBytes})});
    tensors.push_back({prefix + "weight_scale", view(DType::F8_E4M3, {rows, kScaleBytes})});
    tensors.push_back({prefix + "weight_scale_2", view(DType::F32, {})});
    tensors.push_back({prefix + "input_scale", view(DType::F32, {})});
  }
  const auto start = std::chrono::steady_clock::now();
  write_safetensors(path, tensors, {{"format", "pt"}, {"producer", "fp4serve bench io --make"}});
  std::printf("wrote %s: %zu tensors, %lld layers of [%lld, %lld] U8 + scales, in %.1f s\n", path.c_str(),
              tensors.size(), static_cast<long long>(layers), static_cast<long long>(rows),
              static_cast<long long>(kPackedBytes), seconds_since(start));
}

// Reads every tensor byte of every file through the reader; returns the byte sum.
uint64_t read_through_reader(const std::string& path, unsigned threads) {
  const TensorSource source = TensorSource::open(path);
  std::vector<std::span<const std::byte>> ranges;
  for (const auto& file : source.files()) {
    for (const auto& name : file->tensor_names()) {
      const TensorView& t = file->tensor(name);
      ranges.emplace_back(t.data, t.nbytes);
    }
  }
  return sum_bytes_parallel(ranges, threads);
}

void run_cat(const std::vector<std::string>& files) {
  std::vector<char*> argv{const_cast<char*>("cat")};
  for (const auto& f : files) argv.push_back(const_cast<char*>(f.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int status = posix_spawnp(&pid, "cat", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (status != 0) fail("cannot run cat: {}", std::strerror(status));
  int exit_status = 0;
  if (::waitpid(pid, &exit_status, 0) < 0 || !WIFEXITED(exit_status) || WEXITSTATUS(exit_status) != 0) {
    fail("cat {} failed", files.front());
  }
}

double residency(const std::vector<std::string>& files) {
  double cached = 0, total = 0;
  for (const auto& f : files) {
    const auto size = static_cast<double>(std::filesystem::file_size(f));
    cached += page_cache_residency(f) * size;
    total += size;
  }
  return total > 0 ? cached / total : 1.0;
}

int bench_io(const BenchIoOptions& options) {
  if (!options.make_path.empty()) {
    make_test_file(options.make_path, options.make_gb);
    if (options.path.empty()) return 0;
  }
  FP4SERVE_CHECK(!options.path.empty(), "bench io: give a safetensors file or checkpoint directory (or --make FILE)");

  // Discover the files (reads headers only) and let the mappings go.
  std::vector<std::string> files;
  size_t tensors = 0;
  double bytes = 0;
  {
    const TensorSource source = TensorSource::open(options.path);
    for (const auto& f : source.files()) {
      files.push_back(f->path());
      bytes += static_cast<double>(f->file_size());
    }
    tensors = source.tensor_names().size();
  }
  const std::string eviction = options.drop_caches ? "drop_caches" : "posix_fadvise(DONTNEED)";
  std::printf("fp4serve bench io: %s: %zu file(s), %.1f MB, %zu tensors; reader threads: %u; cold = after %s\n",
              options.path.c_str(), files.size(), bytes / 1e6, tensors, options.threads, eviction.c_str());
  std::printf("%-5s %-34s %14s %9s %10s\n", "pass", "method", "cached before", "seconds", "MB/s");

  const std::string reader_label = fmt::format("fp4serve reader (mmap, {} thr)", options.threads);
  const std::string cat_label = files.size() == 1 ? "cat FILE >/dev/null" : "cat FILES >/dev/null";
  uint64_t checksum = 0;
  bool eviction_failed = false;
  for (const char* pass : {"cold", "warm"}) {
    for (int method = 0; method < 2; ++method) {
      if (std::string(pass) == "cold") {
        if (options.drop_caches) {
          drop_all_page_caches();
        } else {
          for (const auto& f : files) evict_from_page_cache(f);
        }
      }
      const double cached = residency(files);
      if (std::string(pass) == "cold" && cached > 0.05) eviction_failed = true;
      const auto start = std::chrono::steady_clock::now();
      if (method == 0) {
        checksum = read_through_reader(options.path, options.threads);
      } else {
        run_cat(files);
      }
      const double seconds = seconds_since(start);
      std::printf("%-5s %-34s %13.1f%% %9.3f %10.1f\n", pass, method == 0 ? reader_label.c_str() : cat_label.c_str(),
                  100 * cached, seconds, bytes / 1e6 / seconds);
    }
  }
  std::printf("checksum (sum of all tensor bytes): %llu\n", static_cast<unsigned long long>(checksum));
  if (eviction_failed) {
    std::printf("note: the files stayed cached despite eviction, so the cold rows measured memory, not disk\n");
  }
  return 0;
}

const RegisterBenchmark bench_io_command{Command{
    "io", "Read throughput of a safetensors checkpoint through the reader, beside `cat`",
    [](CLI::App& sub) -> std::function<int()> {
      auto options = std::make_shared<BenchIoOptions>();
      sub.add_option("path", options->path, "A .safetensors file, an index, or a checkpoint directory");
      sub.add_option("--threads", options->threads, "Reader threads (default: all cores)")->check(CLI::Range(1, 1024));
      sub.add_flag("--drop-caches", options->drop_caches,
                   "Make cold passes drop the whole page cache (root) instead of evicting only these files");
      sub.add_option("--make", options->make_path, "Write a test file of --gb GB here (then benchmark PATH, if given)");
      sub.add_option("--gb", options->make_gb, "Size of the --make file in GB (10^9 bytes)")->capture_default_str();
      return [options] { return bench_io(*options); };
    }}};

}  // namespace
}  // namespace fp4serve::cli
