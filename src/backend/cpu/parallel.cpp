#include "backend/cpu/parallel.h"

#include <atomic>

namespace fp4serve::cpu {
namespace {

std::atomic<int64_t> min_cost{int64_t{1} << 14};

}  // namespace

int64_t parallel_min_cost() { return min_cost.load(std::memory_order_relaxed); }
void set_parallel_min_cost(int64_t cost) { min_cost.store(cost, std::memory_order_relaxed); }

}  // namespace fp4serve::cpu
