// The CUDA backend's one entry point: backend/backend_factory.cpp calls it in builds
// with CUDA (FP4SERVE_HAVE_CUDA). It implements backend/backend.h on the first visible
// GPU and throws Error naming the reason when it cannot start (no device, driver too
// old, not sm_90).
#pragma once

#include <memory>

#include "backend/backend.h"

namespace fp4serve {

std::unique_ptr<Backend> make_cuda_backend();

}  // namespace fp4serve
