// The tensors a DeepSeek-V4 config implies (DeepSeek's inference/model.py: the Block,
// MTPBlock and DSparkBlock parameters), by canonical name with their logical shapes: what
// the loader checks a checkpoint against, and what make-test-model generates.
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
  kMtpProjection,  // mtp.J.e_proj / h_proj; a DSpark draft's mtp.0.main_proj
  kHead,           // head
  kDraftHead,      // a DSpark draft's markov_head.markov_w2 and confidence_head.proj (BF16 as shipped)
};

struct ExpectedLinear {
  std::string name;  // canonical module, e.g. "layers.0.attn.wq_a"
  int64_t out_features = 0;
  int64_t in_features = 0;
  LinearGroup group = LinearGroup::kAttention;
  std::string shape_formula;  // "[q_lora_rank, hidden_size]", for error messages
  bool in_dspark_draft = false;  // under mtp.* of a DSpark draft (NVIDIA's NVFP4 exports leave those as shipped)
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

// Every tensor of the main model and of its draft: `config.num_mtp_layers` classic MTP blocks,
// or the stages of a DSpark draft (DeepSeek-V4-Flash-0731's mtp.0..2: V4 blocks with
// sliding-window attention; main_proj [hidden, taps * hidden] + main_norm on stage 0; norm,
// hc_head_*, markov_head.markov_w1 [vocab, rank] (an embedding), markov_w2 [vocab, rank] and
// confidence_head.proj [1, hidden + rank] (no bias) on the last stage).
ExpectedTensors expected_tensors(const ModelConfig& config);

}  // namespace fp4serve
