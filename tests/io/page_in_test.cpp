// sum_bytes_parallel against a plain byte-by-byte sum, over slices that cut
// through ranges at every thread count.
#include "io/page_in.h"

#include <numeric>
#include <random>

#include "io_test_support.h"

namespace fp4serve {
namespace {

uint64_t naive_sum(const std::vector<std::vector<uint8_t>>& buffers) {
  uint64_t total = 0;
  for (const auto& b : buffers)
    for (uint8_t v : b) total += v;
  return total;
}

TEST(SumBytesParallel, MatchesNaiveSumForAnyThreadCount) {
  std::mt19937 random(7);
  // Odd sizes, an empty range, and one range larger than the 2^24-byte block.
  std::vector<std::vector<uint8_t>> buffers;
  for (size_t size : {size_t{0}, size_t{1}, size_t{13}, size_t{4099}, (size_t{1} << 24) + 77, size_t{65536}}) {
    std::vector<uint8_t> b(size);
    for (auto& v : b) v = static_cast<uint8_t>(random());
    buffers.push_back(std::move(b));
  }
  std::vector<std::span<const std::byte>> ranges;
  for (const auto& b : buffers) ranges.emplace_back(reinterpret_cast<const std::byte*>(b.data()), b.size());
  const uint64_t expected = naive_sum(buffers);
  for (unsigned threads : {0u, 1u, 2u, 3u, 7u, 64u})
    EXPECT_EQ(sum_bytes_parallel(ranges, threads), expected) << threads;
}

TEST(SumBytesParallel, AllOnesReachTheFullCount) {
  // 255 per byte across several blocks: catches a narrow accumulator overflowing.
  std::vector<uint8_t> ones((size_t{1} << 25) + 3, 0xFF);
  const std::vector<std::span<const std::byte>> ranges = {
      {reinterpret_cast<const std::byte*>(ones.data()), ones.size()}};
  EXPECT_EQ(sum_bytes_parallel(ranges, 2), uint64_t{255} * ones.size());
}

TEST(SumBytesParallel, NoRanges) { EXPECT_EQ(sum_bytes_parallel({}, 4), 0u); }

}  // namespace
}  // namespace fp4serve
