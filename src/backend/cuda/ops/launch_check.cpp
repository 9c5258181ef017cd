// Built into fp4serve_cuda (CMakeLists.txt), so the ops' host code links without the core.
#include <cuda_runtime_api.h>

#include "base/error.h"

namespace fp4serve::cuda {

void check_launch(const char* what) {
  const cudaError_t status = cudaGetLastError();
  FP4SERVE_CHECK(status == cudaSuccess, "CUDA error in {}: {} ({})", what, cudaGetErrorName(status),
                 cudaGetErrorString(status));
}

void require(bool ok, const char* what) { FP4SERVE_CHECK(ok, "{}", what); }

}  // namespace fp4serve::cuda
