// A linear weight on the GPU for ops::linear_exact: the checkpoint's bytes uploaded as they
// are, except F16 weights widened to F32 and FP8 block scales (E8M0 or F32) to floats, both
// exact, so the exact linear reads every encoding with the CPU's values.
#pragma once

#include "backend/cuda/gpu_context.h"
#include "backend/cuda/ops/ops.h"
#include "formats/linear_weight.h"

namespace fp4serve::cuda {

class ExactDeviceWeight {
 public:
  // Checks the weight (formats' validate_linear_weight: errors name it), then uploads.
  static ExactDeviceWeight upload(const LinearWeight& weight);

  const ops::ExactWeight& ref() const { return ref_; }
  size_t device_bytes() const { return weight_.bytes() + scale_.bytes(); }
  // What upload() will hold on the device for `weight`, without uploading.
  static size_t device_bytes_for(const LinearWeight& weight);

 private:
  ops::ExactWeight ref_;
  DeviceBuffer weight_;
  DeviceBuffer scale_;
};

}  // namespace fp4serve::cuda
