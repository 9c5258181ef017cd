#include "backend/backend.h"

#include <cstdio>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda_probe.h"
#include "base/error.h"

#if FP4SERVE_HAVE_CUDA_BACKEND
#include "backend/cuda/cuda_backend.h"
#endif

namespace fp4serve {

std::string_view device_kind_name(DeviceKind kind) { return kind == DeviceKind::kCuda ? "cuda" : "cpu"; }

std::unique_ptr<Backend> make_backend(DeviceKind kind, [[maybe_unused]] int device) {
  if (kind == DeviceKind::kCpu) return std::make_unique<cpu::CpuBackend>();
#if FP4SERVE_HAVE_CUDA_BACKEND
  FP4SERVE_CHECK(cuda_device_count() > 0, "--device cuda: no CUDA GPU is visible (driver missing, or no device)");
  return make_cuda_backend(device);
#elif FP4SERVE_HAVE_CUDA
  fail("--device cuda: this build has CUDA kernels but not the CUDA backend (backend/cuda/cuda_backend.h)");
#else
  fail("--device cuda: this build has no CUDA (configure with nvcc present and -DFP4SERVE_ENABLE_CUDA=ON)");
#endif
}

std::unique_ptr<Backend> make_auto_backend() {
#if FP4SERVE_HAVE_CUDA_BACKEND
  if (cuda_device_count() > 0) {
    try {
      return make_cuda_backend();
    } catch (const Error& e) {
      // A GPU that cannot run the backend (wrong architecture, driver too old): the CPU runs the model, and says why.
      std::fprintf(stderr, "--device auto: the CUDA backend did not start (%s); using the CPU\n", e.what());
    }
  }
#endif
  return std::make_unique<cpu::CpuBackend>();
}

}  // namespace fp4serve
