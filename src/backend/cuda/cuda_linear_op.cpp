// Backend::linear on the GPU: every job checked first (errors name the weight), then each
// run by the exact linear after the job's activation policy (backend/cpu/linear.cpp's:
// FP8 1x128 power-of-two quantize-dequantize, or the values as given).
#ifdef FP4SERVE_HAVE_CUDA
#include "backend/cuda/cuda_backend_impl.h"
#include "base/error.h"

namespace fp4serve::cuda {

void CudaBackend::linear(std::span<const LinearJob> jobs) {
  for (const LinearJob& j : jobs) {
    const ExactDeviceWeight& w = placed(j.weight);
    const int64_t n = w.ref().n, k = w.ref().k, end = j.row_end < 0 ? n : j.row_end;
    const std::string& name = j.weight->name;
    FP4SERVE_CHECK(j.rows >= 0 && (j.rows == 0 || (j.x != nullptr && j.y != nullptr)), "linear {}: {} rows without buffers",
                   name, j.rows);
    FP4SERVE_CHECK(j.row_begin >= 0 && j.row_begin < end && end <= n, "linear {}: output rows [{}, {}) outside [0, {})", name,
                   j.row_begin, end, n);
    FP4SERVE_CHECK(j.x_stride == 0 || j.x_stride >= k, "linear {}: x_stride {} below in_features {}", name, j.x_stride, k);
    FP4SERVE_CHECK(j.act != ActivationQuant::kFP8Block128 || k % 128 == 0,
                   "linear {}: FP8 1x128 activations need in_features % 128 == 0, got {}", name, k);
  }
  for (const LinearJob& j : jobs) run_linear(j);
}

void CudaBackend::run_linear(const LinearJob& j) {
  if (j.rows == 0) return;
  const ExactDeviceWeight& w = placed(j.weight);
  const int64_t k = w.ref().k, end = j.row_end < 0 ? w.ref().n : j.row_end;
  const float* x = j.x;
  int64_t x_stride = j.x_stride ? j.x_stride : k;
  if (j.act == ActivationQuant::kFP8Block128) {
    float* q = work<float>(Work::kQuantized, j.rows * k);
    ops::fp8_quantize_dequantize(stream_, x, x_stride, j.rows, k, 128, q, k);
    x = q;
    x_stride = k;
  }
  ops::ExactLinear lin;
  lin.w = w.ref();
  lin.x = x;
  lin.x_stride = x_stride;
  lin.rows = j.rows;
  lin.y = j.y;
  lin.y_stride = j.y_stride ? j.y_stride : end - j.row_begin;
  lin.row_begin = j.row_begin;
  lin.row_end = end;
  lin.round_bf16 = j.round_bf16;
  ops::linear_exact(stream_, lin);
}

}  // namespace fp4serve::cuda
#endif
