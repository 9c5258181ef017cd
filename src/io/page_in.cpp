#include "io/page_in.h"

#include <sys/mman.h>
#include <unistd.h>

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

// Asks the kernel to start reading [data, data + size) in the background. On a
// cold mapped file this keeps the disk busy while we sum the chunk before it;
// page faults alone fetch only a small readahead window at a time.
void prefetch(const std::byte* data, size_t size) {
  static const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto start = reinterpret_cast<uintptr_t>(data) / page * page;
  const auto end = reinterpret_cast<uintptr_t>(data) + size;
  if (size > 0) ::madvise(reinterpret_cast<void*>(start), end - start, MADV_WILLNEED);
}

// The pieces of [begin, end) of the concatenation of `ranges`.
std::vector<std::span<const std::byte>> slice(const std::vector<std::span<const std::byte>>& ranges, size_t begin,
                                              size_t end) {
  std::vector<std::span<const std::byte>> pieces;
  size_t range_start = 0;
  for (const auto& range : ranges) {
    const size_t range_end = range_start + range.size();
    const size_t from = std::max(begin, range_start);
    const size_t to = std::min(end, range_end);
    if (from < to) pieces.push_back(range.subspan(from - range_start, to - from));
    range_start = range_end;
    if (range_start >= end) break;
  }
  return pieces;
}

// Sums a slice chunk by chunk, hinting the next chunk before summing this one.
uint64_t sum_slice(const std::vector<std::span<const std::byte>>& ranges, size_t begin, size_t end) {
  constexpr size_t kChunk = size_t{64} << 20;
  std::vector<std::span<const std::byte>> chunks;
  for (const auto& piece : slice(ranges, begin, end)) {
    for (size_t at = 0; at < piece.size(); at += kChunk)
      chunks.push_back(piece.subspan(at, std::min(kChunk, piece.size() - at)));
  }
  uint64_t total = 0;
  if (!chunks.empty()) prefetch(chunks[0].data(), chunks[0].size());
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (i + 1 < chunks.size()) prefetch(chunks[i + 1].data(), chunks[i + 1].size());
    total += sum_bytes(chunks[i].data(), chunks[i].size());
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
