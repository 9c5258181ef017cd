// The tensors a DeepSeek-V4 config implies (the names of DeepSeek's
// model.safetensors.index.json; docs/CHECKPOINTS.md), by canonical name with their logical shapes: what the loader checks a
// checkpoint against, and what make-test-model generates.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/model_config.h"

namespace fp4serve {

// Which group a linear belongs to, for quantization recipes and reports.
enum class LinearGroup : uint8_t {
  kAttention,      // wq_a, wq_b, wkv, wo_a, wo_b, indexer.wq_b
  kCompressor,     // compressor / indexer compressor wkv, wgate; indexer weights_proj
  kRouter,         // ffn.gate
  kSharedExpert,   // ffn.shared_experts.w1/w2/w3
  kRoutedExpert,   // ffn.experts.E.w1/w2/w3
  kMtpProjection,  // mtp.J.e_proj / h_proj
  kHead,           // head
};

struct ExpectedLinear {
  std::string name;  // canonical module, e.g. "layers.0.attn.wq_a"
  int64_t out_features = 0;
  int64_t in_features = 0;
  LinearGroup group = LinearGroup::kAttention;
  std::string shape_formula;  // "[q_lora_rank, hidden_size]", for error messages
};

// Element kinds a non-linear tensor may be stored as.
enum class TensorKind : uint8_t {
  kFloat,  // F32, BF16 or F16 (norms, mHC parameters, sinks, ape, gate bias, embedding)
  kIndex,  // I64 or I32 (tid2eid)
};

// What DeepSeek stores a non-linear tensor as, and what generated checkpoints use.
enum class NativeDType : uint8_t { kBF16, kF32, kI64 };

struct ExpectedTensor {
  std::string name;  // canonical, e.g. "layers.0.attn_norm.weight"
  std::vector<int64_t> shape;
  TensorKind kind = TensorKind::kFloat;
  NativeDType native_dtype = NativeDType::kBF16;
  std::string shape_formula;
};

struct ExpectedTensors {
  std::vector<ExpectedLinear> linears;
  std::vector<ExpectedTensor> tensors;
};

// Every tensor of the main model and of `config.num_mtp_layers` MTP blocks.
ExpectedTensors expected_tensors(const ModelConfig& config);

}  // namespace fp4serve
