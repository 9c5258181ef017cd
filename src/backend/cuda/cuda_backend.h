// The CUDA backend's one entry point: backend/backend_factory.cpp calls it in builds
// where src/backend/cuda/cuda_backend.cpp or .cu defines it (CMake then sets
// FP4SERVE_HAVE_CUDA_BACKEND). It implements backend/backend.h on the first visible
// GPU and throws Error naming the reason when it cannot start (no device, driver too
// old, not sm_90).
#pragma once

#include <memory>

#include "backend/backend.h"

namespace fp4serve {

std::unique_ptr<Backend> make_cuda_backend();

}  // namespace fp4serve
