// The kernel's page cache, seen from one file: how much of it is cached, and
// asking for it to be dropped. Read benchmarks need both to say honestly whether
// they measured the disk or memory.
#pragma once

#include <string>

namespace fp4serve {

// Fraction (0..1) of the file's pages now in the page cache (mincore). Throws
// Error naming the path if it cannot be mapped.
double page_cache_residency(const std::string& path);

// Asks the kernel to drop the file's clean cached pages (posix_fadvise DONTNEED;
// no privileges needed). Pages mapped by a live mapping stay; check with
// page_cache_residency. Throws Error naming the path if it cannot be opened.
void evict_from_page_cache(const std::string& path);

// sync, then drops the whole machine's page cache through /proc/sys/vm/drop_caches
// (root only). Throws Error if that file is not writable.
void drop_all_page_caches();

}  // namespace fp4serve
