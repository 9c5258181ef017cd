// y = x W^T on a Hopper GPU for every weight encoding (BF16, FP8 block-128, MXFP4, NVFP4).
//   M <= 16 ("decode"): skinny_gemm.cuh, weights streamed at the bandwidth limit
//   M > 16  ("prefill"): tiled_gemm.cuh, tensor-core tiles
// Activation precision follows the design's policy: FP8 block-128 and MXFP4 weights take FP8
// activations per 1x128 with power-of-two scales (DeepSeek's act_quant); NVFP4 takes FP8
// activations by default and BF16 on request; BF16 weights take BF16 activations.
#pragma once

#include <cstdint>
#include <string>

#include "formats/linear_weight.h"
#include "backend/cuda/gpu_context.h"
#include "backend/cuda/kernel_args.h"

namespace fp4serve::cuda {

// A linear weight resident on the GPU in its checkpoint encoding (FP8 block scales widened
// to float). Requirements, checked at upload with an Error naming the weight: K % 128 == 0,
// N % 16 == 0, and an encoding of BF16, FP8 block-128, MXFP4 or NVFP4.
class DeviceLinear {
 public:
  static DeviceLinear upload(const LinearWeight& weight);
  // Adopts buffers already on the device, laid out as kernel_args.h describes (benchmarks
  // fill them on the GPU). Same shape requirements as upload().
  static DeviceLinear adopt(WeightKind kind, int64_t n, int64_t k, DeviceBuffer weight, DeviceBuffer scale,
                            float global_scale, std::string name);

  WeightKind kind() const { return kind_; }
  int64_t out_features() const { return n_; }
  int64_t in_features() const { return k_; }
  float global_scale() const { return global_scale_; }
  const std::string& name() const { return name_; }
  const void* weight_data() const { return weight_.data(); }
  const void* scale_data() const { return scale_.data(); }
  // Bytes read from memory by one pass over the weight (weight + scales as stored on device).
  size_t device_bytes() const { return weight_.bytes() + scale_.bytes(); }

 private:
  WeightKind kind_ = WeightKind::kBF16;
  int64_t n_ = 0, k_ = 0;
  float global_scale_ = 1.0f;
  std::string name_;
  DeviceBuffer weight_;
  DeviceBuffer scale_;
};

// Which kernel family runs a GEMM: kAuto picks decode for M <= 16 tokens, prefill above.
enum class Regime { kAuto, kDecode, kPrefill };

// Activations already in the weight's operand format: FP8 codes + scales, or BF16.
struct GemmInput {
  ActKind act = ActKind::kFP8;
  const void* x = nullptr;         // E4M3 [m, K] or bf16 [m, K]
  const float* x_scale = nullptr;  // FP8: [m, K/128], power-of-two multipliers
  int64_t x_stride = 0;            // elements between rows (0 = K)
  int64_t m = 0;
};

// The activation format a weight takes (see the policy above).
ActKind activation_kind(WeightKind kind, bool nvfp4_bf16_activations = false);

// y (bf16 [m, N], row stride y_stride or N) = input * W^T. Checks shapes and formats.
void gemm(GpuContext& ctx, const DeviceLinear& w, const GemmInput& input, void* y, int64_t y_stride = 0,
          Regime regime = Regime::kAuto);

// DeepSeek act_quant on the device: bf16 [m, K] -> E4M3 [m, K] + float scales [m, K/128].
void quantize_activations(GpuContext& ctx, const void* x_bf16, int64_t x_stride, int64_t m, int64_t k, void* codes,
                          float* scales);

// The whole linear from bf16 activations: quantizes them as the weight's policy asks (in
// the context's work buffers), then runs gemm().
void linear(GpuContext& ctx, const DeviceLinear& w, const void* x_bf16, int64_t m, void* y,
            bool nvfp4_bf16_activations = false, Regime regime = Regime::kAuto);

}  // namespace fp4serve::cuda
