// Smallest CUDA translation unit: proves the toolchain builds for the Hopper
// target. The kernels of the Hopper issue live beside it.
#include <cuda_runtime.h>

namespace fp4serve::cuda {

__global__ void fill_kernel(float* out, float value, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = value;
}

}  // namespace fp4serve::cuda
