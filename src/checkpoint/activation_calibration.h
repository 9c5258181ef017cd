// Activation calibration for NVFP4 exports (`quantize --calibrate-tokens`): the
// amax of every linear's input over calibration text, as ModelOpt's max calibration
// records it (the source model run unquantized; input_scale = amax / (6 * 448)).
//
// ModelOpt's rule for routed experts that no calibration token reached (export,
// layer_utils.set_expert_quantizer_amax over each MoE block's experts, one projection
// at a time): such an expert's input amax is the max over the experts of the same
// layer and projection that were reached; if none was, 0.5. We do the same and list
// every expert it applied to. A linear outside the routed experts that calibration
// never ran is an error: the forward pass runs every one.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "checkpoint/expected_tensors.h"
#include "formats/activation_observer.h"

namespace fp4serve {

struct ObservedInput {
  float amax = 0.0f;     // max |x| over every element seen
  int64_t rows = 0;      // activation rows (tokens) seen
  int64_t non_finite = 0;  // NaN / Inf elements seen (they leave amax alone)
};

// Records max |x| per linear (canonical name) while installed as a backend's activation
// observer (Backend::set_activation_observer).
class InputAmaxRecorder : public ActivationObserver {
 public:
  void observe(const LinearWeight& weight, const float* x, int64_t rows, int64_t x_stride) override;
  std::map<std::string, ObservedInput> observed() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, ObservedInput> observed_;
};

inline constexpr float kUncalibratedLayerAmax = 0.5f;  // ModelOpt's fallback_value

struct InputCalibration {
  std::map<std::string, float> amax;  // every linear of `needed`, canonical name -> input amax
  std::vector<std::string> filled_from_layer;  // experts never reached: their layer's max
  std::vector<std::string> filled_with_fallback;  // experts of a layer none of whose experts was reached
};

// Input amax for each of `needed` (the linears the export quantizes to NVFP4) from what
// calibration observed, completed by ModelOpt's rule above. Throws Error naming the linear
// for a non-expert linear never observed, or for an observed input that is all zeros or
// had non-finite values.
InputCalibration complete_input_calibration(const std::map<std::string, ObservedInput>& observed,
                                            const std::vector<ExpectedLinear>& needed);

}  // namespace fp4serve
