// cuBLASLt as the yardstick of the kernel workbench: y[M, N] = x[M, K] * W[N, K]^T in BF16,
// or in FP8 E4M3 with per-tensor scales (what PyTorch's _scaled_mm runs), bf16 output.
// libcublasLt is opened with dlopen at first use, so fp4serve itself never needs it to start.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>

namespace fp4serve::cuda {

class CublasLtBaseline {
 public:
  enum class Precision { kBF16, kFP8 };

  // Opens the library and a handle; returns nullptr with `why` set when unavailable.
  static std::unique_ptr<CublasLtBaseline> open(std::string* why);
  ~CublasLtBaseline();

  // Runs one product; false (with `why`) if cuBLASLt has no algorithm for the shape.
  // FP8: x and w are E4M3 and the scales are device floats (one each).
  bool matmul(Precision precision, int64_t m, int64_t n, int64_t k, const void* x, const void* w, void* y,
              const float* x_scale, const float* w_scale, cudaStream_t stream, std::string* why);

  struct Api;

 private:
  CublasLtBaseline() = default;
  std::unique_ptr<Api> api_;
  void* library_ = nullptr;
  void* handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

}  // namespace fp4serve::cuda
