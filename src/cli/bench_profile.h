// `bench decode --profile`: the per-op and per-projection table of the timed steps, each
// projection's weight bytes beside the read bandwidth measured in the same run (its own
// floor), so the op that holds a step back shows.
#pragma once

#include <cstdint>

#include "cli/metered_backend.h"

namespace fp4serve::cli {

// Rows per step (totals over `steps` divided by it), slowest first; `step_seconds` is the
// median step, `bandwidth` bytes/s (0: no floor columns, as for prefill).
void print_profile(const MeteredBackend& metered, int64_t steps, double step_seconds, double bandwidth);

}  // namespace fp4serve::cli
