// The CPU backend's element-wise and per-head work over the thread pool: between the
// projections of a decode step these parts would otherwise run on one core while the
// others wait. Small loops stay on the calling thread, where waking the pool (a few
// microseconds) would cost more than it saves.
#pragma once

#include <cstdint>

#include "backend/cpu/thread_pool.h"

namespace fp4serve::cpu {

// About this many simple float operations before a loop goes parallel (by default
// 2^14); tests set 0 to run every loop on the pool.
int64_t parallel_min_cost();
void set_parallel_min_cost(int64_t cost);

// fn(begin, end) over [0, units); `cost` estimates the whole loop's float operations.
// Units must be independent and compute the same thing wherever they run.
template <typename Fn>
void parallel_units(int64_t units, int64_t cost, const Fn& fn) {
  if (units <= 0) return;
  if (cost < parallel_min_cost() || units == 1) {
    fn(int64_t{0}, units);
    return;
  }
  ThreadPool::global().parallel_for(units, 1, fn);
}

}  // namespace fp4serve::cpu
