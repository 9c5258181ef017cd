// Weights on 2 MiB pages where the kernel allows it. A decode step streams every weight
// once; on 4 KiB pages that is a TLB miss (a page walk) every 4 KiB of every core's
// stream, and on Linux transparent huge pages are often "madvise"-only, so the memory
// must ask for them (MADV_HUGEPAGE). Both are hints: nothing fails without them.
#pragma once

#include <cstddef>
#include <memory>

namespace fp4serve {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// `bytes` of zeroed memory, aligned to 2 MiB and advised MADV_HUGEPAGE before first
// touch when it is at least one huge page; otherwise (or if the mapping fails) an
// ordinary heap block. Throws std::bad_alloc when no memory can be had.
std::shared_ptr<void> allocate_zeroed(size_t bytes);

// Advises MADV_HUGEPAGE on the whole 2 MiB pages inside [data, data + bytes) (a mapped
// checkpoint file: the page cache then reads it in huge folios where the filesystem
// supports them). Returns whether the kernel took the advice.
bool advise_huge_pages(const void* data, size_t bytes);

}  // namespace fp4serve
