#include "io/page_in.h"

#include <algorithm>
#include <thread>

namespace fp4serve {
namespace {

// A 32-bit accumulator per block keeps the loop in narrow vector lanes; 2^24 bytes
// of at most 255 each cannot overflow it.
uint64_t sum_bytes(const std::byte* data, size_t size) {
  constexpr size_t kBlock = size_t{1} << 24;
  uint64_t total = 0;
  const auto* bytes = reinterpret_cast<const uint8_t*>(data);
  for (size_t start = 0; start < size; start += kBlock) {
    const size_t end = std::min(size, start + kBlock);
    uint32_t block_sum = 0;
    for (size_t i = start; i < end; ++i) block_sum += bytes[i];
    total += block_sum;
  }
  return total;
}

// Sums the bytes in [begin, end) of the concatenation of `ranges`.
uint64_t sum_slice(const std::vector<std::span<const std::byte>>& ranges, size_t begin, size_t end) {
  uint64_t total = 0;
  size_t range_start = 0;
  for (const auto& range : ranges) {
    const size_t range_end = range_start + range.size();
    const size_t from = std::max(begin, range_start);
    const size_t to = std::min(end, range_end);
    if (from < to) total += sum_bytes(range.data() + (from - range_start), to - from);
    range_start = range_end;
    if (range_start >= end) break;
  }
  return total;
}

}  // namespace

uint64_t sum_bytes_parallel(const std::vector<std::span<const std::byte>>& ranges, unsigned threads) {
  size_t total_bytes = 0;
  for (const auto& range : ranges) total_bytes += range.size();
  threads = std::max(1u, threads);
  std::vector<uint64_t> sums(threads, 0);
  std::vector<std::thread> workers;
  workers.reserve(threads);
  for (unsigned t = 0; t < threads; ++t) {
    const size_t begin = total_bytes / threads * t + std::min<size_t>(t, total_bytes % threads);
    const size_t end = begin + total_bytes / threads + (t < total_bytes % threads ? 1 : 0);
    workers.emplace_back([&ranges, &sums, t, begin, end] { sums[t] = sum_slice(ranges, begin, end); });
  }
  for (auto& worker : workers) worker.join();
  uint64_t total = 0;
  for (uint64_t s : sums) total += s;
  return total;
}

}  // namespace fp4serve
