// A fixed pool of worker threads for the CPU kernels: parallel_for splits a range
// of independent tasks over all cores (the caller works too). Workers spin briefly
// before sleeping, because decode issues hundreds of small parallel loops a token.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace fp4serve::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // threads <= 0: one per hardware thread
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // Calls fn(begin, end) over [0, n) in chunks of at least `grain` (shrinking towards
  // the end of the range), on all threads; returns when every chunk is done. Several
  // threads may call it at once: one gets the workers, the others run their loops alone.
  // Not reentrant: fn must not call parallel_for.
  // fn is called through a plain pointer (no std::function), so a call never allocates.
  template <typename Fn>
  void parallel_for(int64_t n, int64_t grain, const Fn& fn) {
    run(n, grain, &fn, [](const void* f, int64_t b, int64_t e) { (*static_cast<const Fn*>(f))(b, e); });
  }

  // The process-wide pool (sized by FP4SERVE_THREADS, else all hardware threads).
  static ThreadPool& global();

 private:
  using Trampoline = void (*)(const void*, int64_t, int64_t);
  void run(int64_t n, int64_t grain, const void* fn, Trampoline call);
  void worker_loop();
  void run_chunks();

  std::vector<std::thread> workers_;
  std::mutex owner_;  // held by the caller whose loop the workers run
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> active_{0};
  bool stopping_ = false;
  const void* job_ = nullptr;
  Trampoline call_ = nullptr;
  int64_t job_n_ = 0, job_chunk_ = 1;
  std::atomic<int64_t> next_{0};
};

}  // namespace fp4serve::cpu
