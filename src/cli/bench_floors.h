// The physical references `bench decode` and `bench prefill` print beside their
// results, measured in the same run: read bandwidth (CPU: all threads summing a buffer
// larger than the caches) or copy bandwidth (GPU: device-to-device, read + write).
#pragma once

#include <cstddef>

#include "backend/backend.h"

namespace fp4serve::cli {

// Read bandwidth in bytes/s: the best of 5 passes of all pool threads summing `bytes`.
double measure_read_bandwidth(size_t bytes);

// A GPU's copy bandwidth in bytes/s (read + write): the best of 5 device-to-device copies.
double measure_copy_bandwidth(Backend& backend, size_t bytes);

}  // namespace fp4serve::cli
