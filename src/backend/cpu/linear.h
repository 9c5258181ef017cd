// The one linear op of the CPU backend: y = x @ W^T for a LinearWeight of any
// encoding (BF16, F16, F32, FP8 block-128, MXFP4, NVFP4), over a range of output
// rows (wo_a's groups are row ranges), for many independent (weight, rows) jobs at
// once (routed experts: the grouped form), spread over the thread pool.
#pragma once

#include <cstdint>
#include <span>

#include "formats/linear_weight.h"
#include "backend/cpu/thread_pool.h"

namespace fp4serve::cpu {

enum class ActivationQuant : uint8_t {
  kNone,          // activations as given (fp32 holding bf16 or fp32 values)
  kFP8Block128,   // DeepSeek: e4m3 per 1x128 block with power-of-two scales, K % 128 == 0
};

struct LinearJob {
  const LinearWeight* weight = nullptr;
  const float* x = nullptr;   // rows x in_features
  int64_t x_stride = 0;       // floats between rows; 0 = in_features
  int64_t rows = 0;
  float* y = nullptr;         // rows x (row_end - row_begin)
  int64_t y_stride = 0;       // 0 = row_end - row_begin
  int64_t row_begin = 0;      // output rows (features) [row_begin, row_end) of W
  int64_t row_end = -1;       // -1 = out_features
  ActivationQuant act = ActivationQuant::kNone;
  bool round_bf16 = false;    // store bf16-rounded results (the reference's bf16 GEMM outputs)
};

// Sees the input of every linear job before any activation quantization: how
// `quantize --calibrate-tokens` records per-linear activation amax. Installed for a
// calibration run only (nullptr, the default, costs one load per call); observe() may
// be called from any thread that runs a linear.
class ActivationObserver {
 public:
  virtual ~ActivationObserver() = default;
  virtual void observe(const LinearWeight& weight, const float* x, int64_t rows, int64_t x_stride) = 0;
};
void set_activation_observer(ActivationObserver* observer);

// Checks every job (shapes, encodings, block alignment) and throws Error naming the
// weight, then runs them all. No allocation once the scratch buffers have grown.
void linear(std::span<const LinearJob> jobs, ThreadPool& pool = ThreadPool::global());
void linear(const LinearJob& job, ThreadPool& pool = ThreadPool::global());

}  // namespace fp4serve::cpu
