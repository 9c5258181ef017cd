#include "backend/cuda_probe.h"

#ifdef FP4SERVE_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace fp4serve {

int cuda_device_count() {
#ifdef FP4SERVE_HAVE_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
#else
  return 0;
#endif
}

}  // namespace fp4serve
