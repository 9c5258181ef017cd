// allocate_zeroed: zeroed, writable memory of the size asked, 2 MiB aligned from one huge
// page up (whether the kernel backs it with huge pages is its choice and not checked).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "base/huge_pages.h"

namespace fp4serve {
namespace {

TEST(HugePages, LargeBlocksAreAlignedZeroedAndWritable) {
  for (size_t bytes : {kHugePageBytes, kHugePageBytes * 3 + 12345}) {
    std::shared_ptr<void> block = allocate_zeroed(bytes);
    ASSERT_NE(block, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(block.get()) % kHugePageBytes, 0u) << bytes;
    auto* p = static_cast<unsigned char*>(block.get());
    EXPECT_TRUE(std::all_of(p, p + bytes, [](unsigned char c) { return c == 0; })) << bytes;
    std::memset(p, 0xAB, bytes);
    EXPECT_EQ(p[bytes - 1], 0xAB);
  }
}

TEST(HugePages, SmallBlocksComeFromTheHeapZeroed) {
  std::shared_ptr<void> block = allocate_zeroed(1000);
  ASSERT_NE(block, nullptr);
  auto* p = static_cast<unsigned char*>(block.get());
  EXPECT_TRUE(std::all_of(p, p + 1000, [](unsigned char c) { return c == 0; }));
}

TEST(HugePages, AdviceNeedsAWholeHugePageInside) {
  std::shared_ptr<void> block = allocate_zeroed(kHugePageBytes * 2);
  auto* p = static_cast<unsigned char*>(block.get());
  EXPECT_FALSE(advise_huge_pages(p + 1, kHugePageBytes));  // no whole huge page inside
  if (!advise_huge_pages(p, kHugePageBytes * 2)) GTEST_SKIP() << "this kernel refuses MADV_HUGEPAGE (no THP)";
}

}  // namespace
}  // namespace fp4serve
