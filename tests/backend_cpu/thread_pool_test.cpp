// The thread pool's contract: parallel_for covers [0, n) exactly once in chunks of at
// least the grain (the last one may be shorter), from any pool size, call after call, and
// from several threads at once (the ranks of a tensor-parallel model share the pool).
#include "backend/cpu/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace fp4serve::cpu {
namespace {

TEST(ThreadPool, EveryIndexOnceInChunksOfAtLeastTheGrain) {
  for (int threads : {1, 2, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {0, 1, 7, 64, 1000, 4099}) {
      for (int64_t grain : {1, 3, 64}) {
        std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
        std::atomic<int> short_chunks{0};
        pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
          ASSERT_LT(b, e);
          ASSERT_LE(e, n);
          if (e - b < grain && e != n) short_chunks.fetch_add(1);
          for (int64_t i = b; i < e; ++i) seen[static_cast<size_t>(i)].fetch_add(1);
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[static_cast<size_t>(i)].load(), 1) << "n " << n << " grain " << grain;
        EXPECT_EQ(short_chunks.load(), 0) << "n " << n << " grain " << grain;
      }
    }
  }
}

TEST(ThreadPool, ManyShortCallsInARow) {
  ThreadPool pool(4);
  int64_t total = 0;
  for (int call = 0; call < 2000; ++call) {
    std::atomic<int64_t> sum{0};
    pool.parallel_for(37, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) sum.fetch_add(i);
    });
    total += sum.load();
  }
  EXPECT_EQ(total, 2000 * (36 * 37 / 2));
}

TEST(ThreadPool, SeveralCallersAtOnceEachGetTheirWholeRange) {
  ThreadPool pool(4);
  constexpr int kCallers = 6, kCalls = 300;
  std::vector<int64_t> totals(kCallers, 0);
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      const int64_t n = 50 + c;  // a different range per caller: a mixed-up job shows in the sum
      for (int call = 0; call < kCalls; ++call) {
        std::atomic<int64_t> sum{0};
        pool.parallel_for(n, 1, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) sum.fetch_add(i);
        });
        totals[static_cast<size_t>(c)] += sum.load();
      }
    });
  }
  for (auto& t : callers) t.join();
  for (int c = 0; c < kCallers; ++c) {
    const int64_t n = 50 + c;
    EXPECT_EQ(totals[static_cast<size_t>(c)], kCalls * (n * (n - 1) / 2)) << "caller " << c;
  }
}

}  // namespace
}  // namespace fp4serve::cpu
