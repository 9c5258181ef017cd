// The CUDA backend's one entry point: backend/backend_factory.cpp calls it in builds
// with CUDA (FP4SERVE_HAVE_CUDA). It implements backend/backend.h on visible GPU
// `device` (and makes it the calling thread's current device: a tensor-parallel rank
// creates its backend on the thread that drives it) and throws Error naming the reason
// when it cannot start (no such device, driver too old, not sm_90).
#pragma once

#include <memory>

#include "backend/backend.h"

namespace fp4serve {

std::unique_ptr<Backend> make_cuda_backend(int device = 0);

}  // namespace fp4serve
