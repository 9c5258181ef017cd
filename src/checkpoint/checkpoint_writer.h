// Writes a DeepSeek-V4 checkpoint in one of the layouts fp4serve reads, from
// float32 masters of every tensor: used by `quantize` (masters = the dequantized
// source) and `make-test-model` (masters = seeded random draws).
//
//   native              DeepSeek's own: FP8 E4M3 block-128 + F8_E8M0 scales for attention, shared
//                       experts and MTP projections; MXFP4 (I8 + E8M0 1x32) routed experts; BF16
//                       compressor / indexer weights_proj / router / head / embed / norms; F32 mHC,
//                       sinks, ape, gate bias; I64 tid2eid; native names; DeepSeek config with
//                       quantization_config fp8 and expert_dtype fp4.
//   nvfp4               a ModelOpt NVFP4 export of the transformers model: HF names, per-expert
//                       mlp.experts.E.{gate,up,down}_proj with .weight (U8) / .weight_scale (E4M3) /
//                       .weight_scale_2 (+ .input_scale); hf_quant_config.json and a
//                       quantization_config as ModelOpt writes them. Scope `experts` quantizes the
//                       routed experts only (NVIDIA's DeepSeek-V4 recipe); `linears` every linear
//                       but o_a_proj, the router, lm_head and MTP (the field report's checkpoint).
//                       w1/w3 of one expert share one global scale (ModelOpt's fused amax).
//   transformers-saved  what save_pretrained writes: everything BF16, save_pretrained's names,
//                       transformers-style config.
//   bf16                DeepSeek names, every linear BF16, no quantization config.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "checkpoint/expected_tensors.h"
#include "formats/linear_weight.h"
#include "config/model_config.h"

namespace fp4serve {

enum class OutputLayout : uint8_t { kNative, kNvfp4, kTransformersSaved, kBF16 };
bool parse_output_layout(std::string_view name, OutputLayout* out);  // "native", "nvfp4", "transformers-saved", "bf16"
std::string_view output_layout_name(OutputLayout layout);

enum class Nvfp4Scope : uint8_t { kExperts, kLinears };

// Float32 values of every tensor to write, in canonical names.
class MasterSource {
 public:
  virtual ~MasterSource() = default;
  virtual std::vector<float> linear(const ExpectedLinear& linear) = 0;  // [out, in] row-major
  virtual std::vector<float> tensor(const ExpectedTensor& tensor) = 0;  // float tensors, in their shape
  virtual std::vector<int64_t> index_tensor(const ExpectedTensor& tensor) = 0;  // tid2eid
  // Calibrated activation amax of a linear's input, when known (NVFP4 input_scale = amax / 2688).
  virtual std::optional<float> input_amax(const ExpectedLinear& linear) = 0;
};

struct WriterOptions {
  OutputLayout layout = OutputLayout::kNative;
  Nvfp4Scope nvfp4_scope = Nvfp4Scope::kLinears;
  uint64_t shard_bytes = uint64_t{2} << 30;  // a shard is closed once it holds at least this much
  // Headers with holes: every linear's weight and block scale, and any other tensor over
  // 1 MiB, is left unwritten (zeros in a sparse file); scalar scales and small tensors get
  // their values. For header-only commands (plan, inspect) on full-size shapes: the value
  // checks of load_checkpoint refuse such a checkpoint (its block scales are zero).
  bool sparse = false;
};

struct ModuleError {
  std::string name;  // canonical module
  WeightEncoding encoding;
  double relative_rms = 0;  // ||dequant(encoded) - master|| / ||master||
};

struct WriteReport {
  std::vector<ModuleError> modules;
  uint64_t bytes = 0;
  size_t shards = 0;
  std::vector<std::string> notes;  // e.g. "no input scales: quant_algo W4A16_NVFP4"
};

// The encoding `layout` gives a linear of `group` (canonical `name`).
WeightEncoding layout_encoding(const WriterOptions& options, const ExpectedLinear& linear);
// The dtype `layout` stores a non-linear tensor in (I64 index tensors; F32 or BF16 as DeepSeek
// ships them; BF16 everywhere in save_pretrained's layout).
DType layout_tensor_dtype(OutputLayout layout, const ExpectedTensor& tensor);

// Writes config.json (+ hf_quant_config.json), the shards and the index into `dir`
// (created if needed). Throws Error naming the tensor or path on failure.
WriteReport write_checkpoint(const std::string& dir, const ModelConfig& config, MasterSource& masters,
                             const WriterOptions& options);

}  // namespace fp4serve
