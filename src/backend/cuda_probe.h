#pragma once

namespace fp4serve {

// Number of CUDA devices usable by this build: 0 in a CPU-only build or when no
// driver/GPU is present. Never fails.
int cuda_device_count();

}  // namespace fp4serve
