#include "base/huge_pages.h"

#include <sys/mman.h>

#include <cstdint>
#include <new>
#include <vector>

namespace fp4serve {

std::shared_ptr<void> allocate_zeroed(size_t bytes) {
  if (bytes >= kHugePageBytes) {
    // Over-map by one huge page and trim both ends, so the block starts on a 2 MiB
    // boundary whatever address the kernel picks; anonymous pages come zeroed.
    const size_t length = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
    void* raw = ::mmap(nullptr, length + kHugePageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw != MAP_FAILED) {
      const auto base = reinterpret_cast<uintptr_t>(raw);
      const uintptr_t aligned = (base + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
      if (aligned > base) ::munmap(raw, aligned - base);
      const uintptr_t end = aligned + length, raw_end = base + length + kHugePageBytes;
      if (raw_end > end) ::munmap(reinterpret_cast<void*>(end), raw_end - end);
      void* block = reinterpret_cast<void*>(aligned);
      ::madvise(block, length, MADV_HUGEPAGE);
      return std::shared_ptr<void>(block, [length](void* p) { ::munmap(p, length); });
    }
  }
  auto heap = std::make_shared<std::vector<std::byte>>(bytes);
  return std::shared_ptr<void>(heap, heap->data());
}

bool advise_huge_pages(const void* data, size_t bytes) {
  const auto begin = reinterpret_cast<uintptr_t>(data);
  const uintptr_t first = (begin + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  const uintptr_t last = (begin + bytes) / kHugePageBytes * kHugePageBytes;
  if (last <= first) return false;
  return ::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE) == 0;
}

}  // namespace fp4serve
