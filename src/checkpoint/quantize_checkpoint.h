// `fp4serve quantize`: any checkpoint fp4serve reads -> DeepSeek-native or
// ModelOpt NVFP4 (or BF16 / transformers-saved), through float32 masters that are
// the exact dequantization of the source. The output is re-loaded before returning.
#pragma once

#include <string>

#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_writer.h"

namespace fp4serve {

// Masters read from a loaded checkpoint: linears dequantized exactly, other tensors
// widened to float32, NVFP4 input scales carried over as activation amax.
class CheckpointMasters : public MasterSource {
 public:
  explicit CheckpointMasters(const Checkpoint& checkpoint) : ck_(checkpoint) {}
  std::vector<float> linear(const ExpectedLinear& linear) override;
  std::vector<float> tensor(const ExpectedTensor& tensor) override;
  std::vector<int64_t> index_tensor(const ExpectedTensor& tensor) override;
  std::optional<float> input_amax(const ExpectedLinear& linear) override;

 private:
  const Checkpoint& ck_;
};

// Float32 copy of any float tensor (F32, BF16, F16) or index tensor (I64, I32).
std::vector<float> tensor_to_f32(const TensorView& tensor);

struct QuantizeResult {
  WriteReport report;
  Checkpoint output;  // the written checkpoint, re-loaded (headers, scales and values checked)
};

QuantizeResult quantize_checkpoint(const std::string& source_dir, const std::string& output_dir,
                                   const WriterOptions& options, bool show_progress);

}  // namespace fp4serve
