#include "checkpoint/activation_calibration.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"

namespace fp4serve {
namespace {

// "layers.3.ffn.experts.5.w1" -> "layers.3.ffn.experts.*.w1": the experts ModelOpt pools.
std::string expert_pool(const std::string& name) {
  const std::string marker = ".experts.";
  const size_t at = name.find(marker);
  if (at == std::string::npos) return {};
  const size_t id = at + marker.size(), dot = name.find('.', id);
  if (dot == std::string::npos) return {};
  return name.substr(0, id) + "*" + name.substr(dot);
}

}  // namespace

void InputAmaxRecorder::observe(const LinearWeight& weight, const float* x, int64_t rows, int64_t x_stride) {
  float amax = 0.0f;
  int64_t non_finite = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * x_stride;
    for (int64_t k = 0; k < weight.in_features; ++k) {
      const float v = std::fabs(row[k]);
      if (std::isfinite(v)) {
        amax = std::max(amax, v);
      } else {
        ++non_finite;
      }
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  ObservedInput& o = observed_[weight.name];
  o.amax = std::max(o.amax, amax);
  o.rows += rows;
  o.non_finite += non_finite;
}

std::map<std::string, ObservedInput> InputAmaxRecorder::observed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return observed_;
}

InputCalibration complete_input_calibration(const std::map<std::string, ObservedInput>& observed,
                                            const std::vector<ExpectedLinear>& needed) {
  InputCalibration out;
  std::map<std::string, float> pool_max;  // over the reached experts of each (layer, projection)
  for (const ExpectedLinear& l : needed) {
    const auto it = observed.find(l.name);
    if (it == observed.end() || it->second.rows == 0) continue;
    const ObservedInput& o = it->second;
    if (o.non_finite > 0)
      fail("calibration: the input of {} had {} NaN/Inf values: the source model misbehaves on the calibration text",
           l.name, o.non_finite);
    if (!(o.amax > 0.0f))
      fail("calibration: the input of {} was all zeros over {} tokens: no input_scale can describe it", l.name, o.rows);
    out.amax[l.name] = o.amax;
    if (l.group == LinearGroup::kRoutedExpert) {
      float& m = pool_max[expert_pool(l.name)];
      m = std::max(m, o.amax);
    }
  }
  for (const ExpectedLinear& l : needed) {
    if (out.amax.count(l.name)) continue;
    if (l.group != LinearGroup::kRoutedExpert)
      fail("calibration never ran {}: no input amax for its NVFP4 input_scale (a forward pass runs every non-expert linear)",
           l.name);
    const auto pooled = pool_max.find(expert_pool(l.name));
    if (pooled != pool_max.end()) {
      out.amax[l.name] = pooled->second;
      out.filled_from_layer.push_back(l.name);
    } else {
      out.amax[l.name] = kUncalibratedLayerAmax;
      out.filled_with_fallback.push_back(l.name);
    }
  }
  return out;
}

}  // namespace fp4serve
