#include "checkpoint/quantize_checkpoint.h"

#include <cstring>
#include <filesystem>

#include "base/error.h"
#include "formats/number_formats.h"
#include "formats/weight_dequantization.h"

namespace fp4serve {

std::vector<float> tensor_to_f32(const TensorView& t) {
  const size_t n = static_cast<size_t>(t.numel());
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    switch (t.dtype) {
      case DType::F32: std::memcpy(&out[i], t.data + 4 * i, 4); break;
      case DType::BF16: {
        uint16_t bits;
        std::memcpy(&bits, t.data + 2 * i, 2);
        out[i] = decode_bf16(bits);
        break;
      }
      case DType::F16: {
        uint16_t bits;
        std::memcpy(&bits, t.data + 2 * i, 2);
        out[i] = decode_f16(bits);
        break;
      }
      case DType::I64: {
        int64_t v;
        std::memcpy(&v, t.data + 8 * i, 8);
        out[i] = static_cast<float>(v);
        break;
      }
      case DType::I32: {
        int32_t v;
        std::memcpy(&v, t.data + 4 * i, 4);
        out[i] = static_cast<float>(v);
        break;
      }
      default: fail("{}: cannot convert {} to float32", t.origin, dtype_name(t.dtype));
    }
  }
  return out;
}

std::vector<float> CheckpointMasters::linear(const ExpectedLinear& linear) {
  return dequantize_to_f32(ck_.linear(linear.name));
}

std::vector<float> CheckpointMasters::tensor(const ExpectedTensor& tensor) {
  return tensor_to_f32(ck_.tensor(tensor.name));
}

std::vector<int64_t> CheckpointMasters::index_tensor(const ExpectedTensor& tensor) {
  const TensorView& t = ck_.tensor(tensor.name);
  std::vector<int64_t> out(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    if (t.dtype == DType::I64) {
      std::memcpy(&out[i], t.data + 8 * i, 8);
    } else {
      int32_t v;
      std::memcpy(&v, t.data + 4 * i, 4);
      out[i] = v;
    }
  }
  return out;
}

std::optional<float> CheckpointMasters::input_amax(const ExpectedLinear& linear) {
  if (calibrated_ != nullptr) {
    const auto it = calibrated_->find(linear.name);
    if (it == calibrated_->end()) return std::nullopt;
    return it->second;
  }
  const LinearWeight& lw = ck_.linear(linear.name);
  if (lw.encoding != WeightEncoding::kNVFP4 || !(lw.input_scale > 0)) return std::nullopt;
  return lw.input_scale * 6.0f * 448.0f;
}

QuantizeResult quantize_checkpoint(const std::string& source_dir, const std::string& output_dir,
                                   const WriterOptions& options, bool show_progress,
                                   const ActivationCalibrator& calibrate) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(output_dir) && fs::equivalent(source_dir, output_dir, ec))
    fail("{}: the output directory must differ from the source", output_dir);
  if (fs::exists(output_dir) && !fs::is_empty(output_dir, ec))
    fail("{}: the output directory exists and is not empty", output_dir);
  LoadOptions load;
  load.show_progress = show_progress;
  if (calibrate && options.layout != OutputLayout::kNvfp4)
    fail("activation calibration applies to --to nvfp4 only (input_scale is an NVFP4 tensor), not {}",
         output_layout_name(options.layout));
  const Checkpoint source = load_checkpoint(source_dir, load);
  QuantizeResult result;
  if (calibrate) {
    std::vector<ExpectedLinear> needed;
    for (const ExpectedLinear& l : expected_tensors(source.config).linears)
      if (layout_encoding(options, l) == WeightEncoding::kNVFP4) needed.push_back(l);
    result.calibration = complete_input_calibration(calibrate(source), needed);
  }
  CheckpointMasters masters(source, result.calibration ? &result.calibration->amax : nullptr);
  result.report = write_checkpoint(output_dir, source.config, masters, options);
  for (const auto& warning : source.warnings) result.report.notes.push_back("source: " + warning);
  result.companions = copy_companion_files(source_dir, output_dir);
  LoadOptions reload;
  reload.show_progress = false;
  result.output = load_checkpoint(output_dir, reload);
  return result;
}

}  // namespace fp4serve
