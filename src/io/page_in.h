// Reads every byte of a set of memory ranges once, split over threads: pages a
// mapped checkpoint into memory after validation (so the first step does not
// stall on page faults), and is what `fp4serve bench io` times.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace fp4serve {

// Returns the sum of all bytes (as unsigned values), so that no read can be
// optimized away and callers can compare contents. The ranges are treated as
// one concatenation cut into `threads` equal contiguous slices, so each thread
// reads sequentially (which the kernel's readahead rewards) whatever the tensor sizes.
uint64_t sum_bytes_parallel(const std::vector<std::span<const std::byte>>& ranges, unsigned threads);

}  // namespace fp4serve
