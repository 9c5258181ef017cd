// Backend::linear on the GPU: every job checked first (errors name the weight), then each
// run with the job's activation policy (backend/cpu/linear.cpp's: FP8 1x128 power-of-two
// scales, or the values as given) on the Hopper GEMMs (linear_cuda.h) where they take the
// job, else on the exact linear.
#ifdef FP4SERVE_HAVE_CUDA
#include "backend/cuda/cuda_backend_impl.h"
#include "base/error.h"

namespace fp4serve::cuda {

void CudaBackend::linear(std::span<const LinearJob> jobs) {
  for (const LinearJob& j : jobs) {
    const ops::ExactWeight& w = placed(j.weight).ref;
    const int64_t n = w.n, k = w.k, end = j.row_end < 0 ? n : j.row_end;
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

// The GEMMs take the whole weight, bf16 outputs, and one activation format per encoding:
// FP8 block-128 and MXFP4 only FP8 activations, BF16 only bf16, NVFP4 either.
bool CudaBackend::run_on_gemm(const LinearJob& j, const PlacedLinear& w) {
  if (!w.fast || !j.round_bf16 || j.row_begin != 0 || (j.row_end >= 0 && j.row_end != w.ref.n)) return false;
  const WeightKind kind = w.fast->kind();
  const bool fp8 = j.act == ActivationQuant::kFP8Block128;
  if (fp8 ? kind == WeightKind::kBF16 : (kind == WeightKind::kFP8Block || kind == WeightKind::kMXFP4)) return false;
  const int64_t n = w.ref.n, k = w.ref.k;
  auto* x = work<uint16_t>(Work::kGemmIn, j.rows * k);
  auto* y = work<uint16_t>(Work::kGemmOut, j.rows * n);
  ops::to_bf16(stream_, j.x, j.x_stride ? j.x_stride : k, j.rows, k, x);
  cuda::linear(*gemm_context_, *w.fast, x, j.rows, y, /*nvfp4_bf16_activations=*/!fp8);
  ops::from_bf16(stream_, y, j.rows, n, j.y, j.y_stride ? j.y_stride : n);
  return true;
}

void CudaBackend::run_linear(const LinearJob& j) {
  if (j.rows == 0) return;
  const PlacedLinear& w = placed(j.weight);
  if (run_on_gemm(j, w)) return;
  const int64_t k = w.ref.k, end = j.row_end < 0 ? w.ref.n : j.row_end;
  const float* x = j.x;
  int64_t x_stride = j.x_stride ? j.x_stride : k;
  if (j.act == ActivationQuant::kFP8Block128) {
    float* q = work<float>(Work::kQuantized, j.rows * k);
    ops::fp8_quantize_dequantize(stream_, x, x_stride, j.rows, k, 128, q, k);
    x = q;
    x_stride = k;
  }
  ops::ExactLinear lin;
  lin.w = w.ref;
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
