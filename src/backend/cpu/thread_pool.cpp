#include "backend/cpu/thread_pool.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "base/error.h"

namespace fp4serve::cpu {

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool([] {
    const char* env = std::getenv("FP4SERVE_THREADS");
    if (!env) return 0;
    const int n = std::atoi(env);
    FP4SERVE_CHECK(n > 0, "FP4SERVE_THREADS={}: expected a positive thread count", env);
    return n;
  }());
  return pool;
}

void ThreadPool::run_chunks() {
  // Guided self-scheduling: each grab takes a share of what is left (at least the
  // grain), so chunks start large (few atomic operations) and shrink towards the end,
  // where a long last chunk would keep every other thread waiting.
  const int64_t spread = static_cast<int64_t>(size()) * 4;
  int64_t begin = next_.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t left = job_n_ - begin;
    if (left <= 0) return;
    const int64_t take = std::min(left, std::max(job_chunk_, left / spread));
    if (!next_.compare_exchange_weak(begin, begin + take, std::memory_order_relaxed)) continue;
    call_(job_, begin, begin + take);
    begin = next_.load(std::memory_order_relaxed);
  }
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    // Spin a little: the next parallel loop of a decode step usually follows within
    // microseconds. Yielding while spinning keeps an oversubscribed machine usable.
    for (int spin = 0; spin < 4000 && generation_.load(std::memory_order_acquire) == seen; ++spin) {
      if (spin % 64 == 63) std::this_thread::yield();
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    }
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      if (stopping_) return;
      seen = generation_.load(std::memory_order_acquire);
    }
    run_chunks();
    active_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(int64_t n, int64_t grain, const void* fn, Trampoline call) {
  if (n <= 0) return;
  const int64_t chunk = std::max<int64_t>(grain, 1);
  // One loop at a time owns the workers; a caller that finds them taken (another rank's
  // thread of a tensor-parallel model) runs its loop itself.
  std::unique_lock<std::mutex> owner(owner_, std::try_to_lock);
  if (workers_.empty() || n <= chunk || !owner.owns_lock()) {
    call(fn, 0, n);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = fn;
    call_ = call;
    job_n_ = n;
    job_chunk_ = chunk;
    next_.store(0, std::memory_order_relaxed);
    active_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_.notify_all();
  run_chunks();
  for (int spin = 0; active_.load(std::memory_order_acquire) != 0; ++spin) {
    if (spin % 64 == 63) std::this_thread::yield();
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }
}

}  // namespace fp4serve::cpu
