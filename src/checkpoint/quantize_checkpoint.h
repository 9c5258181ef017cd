// `fp4serve quantize`: any checkpoint fp4serve reads -> DeepSeek-native or
// ModelOpt NVFP4 (or BF16 / transformers-saved), through float32 masters that are
// the exact dequantization of the source. The output is re-loaded before returning.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "checkpoint/activation_calibration.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_writer.h"
#include "checkpoint/companion_files.h"

namespace fp4serve {

// Masters read from a loaded checkpoint: linears dequantized exactly, other tensors
// widened to float32; activation amax from a calibration when given, else the source's
// own NVFP4 input scales carried over.
class CheckpointMasters : public MasterSource {
 public:
  explicit CheckpointMasters(const Checkpoint& checkpoint, const std::map<std::string, float>* calibrated = nullptr)
      : ck_(checkpoint), calibrated_(calibrated) {}
  std::vector<float> linear(const ExpectedLinear& linear) override;
  std::vector<float> tensor(const ExpectedTensor& tensor) override;
  std::vector<int64_t> index_tensor(const ExpectedTensor& tensor) override;
  std::optional<float> input_amax(const ExpectedLinear& linear) override;

 private:
  const Checkpoint& ck_;
  const std::map<std::string, float>* calibrated_;
};

// Float32 copy of any float tensor (F32, BF16, F16) or index tensor (I64, I32).
std::vector<float> tensor_to_f32(const TensorView& tensor);

// Runs the loaded source model over calibration text and returns what the backend's
// activation observer saw (quantize --calibrate-tokens; the runner lives with the CLI, downstream of
// model/).
using ActivationCalibrator = std::function<std::map<std::string, ObservedInput>(const Checkpoint& source)>;

struct QuantizeResult {
  WriteReport report;
  Checkpoint output;  // the written checkpoint, re-loaded (headers, scales and values checked)
  CompanionCopy companions;  // tokenizer, generation config, ... copied from the source
  std::optional<InputCalibration> calibration;
};

// `calibrate` (optional) gives the input amax of every linear the layout makes NVFP4;
// the uncalibrated experts among them are completed by ModelOpt's rule
// (activation_calibration.h). Calibration applies to the nvfp4 layout only.
QuantizeResult quantize_checkpoint(const std::string& source_dir, const std::string& output_dir,
                                   const WriterOptions& options, bool show_progress,
                                   const ActivationCalibrator& calibrate = nullptr);

}  // namespace fp4serve
