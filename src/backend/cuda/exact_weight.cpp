#ifdef FP4SERVE_HAVE_CUDA
#include "backend/cuda/exact_weight.h"

#include <vector>

#include "base/error.h"
#include "formats/number_formats.h"

namespace fp4serve::cuda {
namespace {

ops::ExactWeightKind kind_of(WeightEncoding e) {
  switch (e) {
    case WeightEncoding::kBF16: return ops::ExactWeightKind::kBF16;
    case WeightEncoding::kF16:
    case WeightEncoding::kF32: return ops::ExactWeightKind::kF32;
    case WeightEncoding::kFP8Block: return ops::ExactWeightKind::kFP8Block;
    case WeightEncoding::kMXFP4: return ops::ExactWeightKind::kMXFP4;
    case WeightEncoding::kNVFP4: return ops::ExactWeightKind::kNVFP4;
  }
  return ops::ExactWeightKind::kBF16;
}

size_t scale_bytes(const LinearWeight& w) {
  if (w.encoding == WeightEncoding::kFP8Block) return static_cast<size_t>(w.scale.numel()) * sizeof(float);
  if (w.encoding == WeightEncoding::kMXFP4 || w.encoding == WeightEncoding::kNVFP4) return w.scale.nbytes;
  return 0;
}

size_t weight_bytes(const LinearWeight& w) {
  return w.encoding == WeightEncoding::kF16 ? static_cast<size_t>(w.weight.numel()) * sizeof(float) : w.weight.nbytes;
}

}  // namespace

size_t ExactDeviceWeight::device_bytes_for(const LinearWeight& weight) { return weight_bytes(weight) + scale_bytes(weight); }

ExactDeviceWeight ExactDeviceWeight::upload(const LinearWeight& w) {
  validate_linear_weight(w);
  ExactDeviceWeight d;
  d.ref_.kind = kind_of(w.encoding);
  d.ref_.n = w.out_features;
  d.ref_.k = w.in_features;
  d.ref_.global_scale = w.encoding == WeightEncoding::kNVFP4 ? w.global_scale : 1.0f;
  d.weight_ = DeviceBuffer(weight_bytes(w));
  if (w.encoding == WeightEncoding::kF16) {
    const uint16_t* bits = w.weight.as<uint16_t>();
    std::vector<float> wide(static_cast<size_t>(w.weight.numel()));
    for (size_t i = 0; i < wide.size(); ++i) wide[i] = decode_f16(bits[i]);
    d.weight_.upload(wide.data(), wide.size() * sizeof(float));
  } else {
    d.weight_.upload(w.weight.data, w.weight.nbytes);
  }
  if (w.encoding == WeightEncoding::kFP8Block) {
    std::vector<float> scales(static_cast<size_t>(w.scale.numel()));
    for (size_t i = 0; i < scales.size(); ++i)
      scales[i] = w.scale.dtype == DType::F32 ? w.scale.as<float>()[i] : decode_e8m0(w.scale.as<uint8_t>()[i]);
    d.scale_ = DeviceBuffer(scales.size() * sizeof(float));
    d.scale_.upload(scales.data(), scales.size() * sizeof(float));
  } else if (w.encoding == WeightEncoding::kMXFP4 || w.encoding == WeightEncoding::kNVFP4) {
    d.scale_ = DeviceBuffer(w.scale.nbytes);
    d.scale_.upload(w.scale.data, w.scale.nbytes);
  }
  d.ref_.weight = d.weight_.data();
  d.ref_.scale = d.scale_.data();
  return d;
}

}  // namespace fp4serve::cuda
#endif
