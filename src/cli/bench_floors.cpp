#include "cli/bench_floors.h"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <vector>

#include "backend/cpu/thread_pool.h"

namespace fp4serve::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

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

}  // namespace fp4serve::cli
