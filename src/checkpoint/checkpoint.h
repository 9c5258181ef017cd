// A loaded checkpoint in canonical (DeepSeek-native) names, whatever layout it
// was shipped in. This is the narrow interface between checkpoint/ and model/:
// model code looks tensors up by canonical name and never sees file names,
// naming schemes or storage dtypes of scales.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/tensor.h"
#include "formats/linear_weight.h"
#include "config/model_config.h"

namespace fp4serve {

class TensorSource;

struct LoadOptions {
  bool show_progress = true;  // progress bar on a TTY while paging data in
  bool page_in = true;        // read every byte once after validation (parallel), so the first step is not slow
  bool check_values = true;   // read every block scale (NaN/Inf/zero/negative) and tid2eid row after the plan
  unsigned threads = 0;       // page-in and scale-check threads; 0 = max(8, hardware threads)
};

struct Checkpoint {
  ModelConfig config;
  // Detected layout: "deepseek-native", "transformers-saved", "transformers", "modelopt-nvfp4".
  std::string layout;
  // Every projection, by canonical module name without ".weight": "layers.0.attn.wq_a",
  // "layers.0.attn.compressor.wkv", "layers.2.attn.indexer.weights_proj",
  // "layers.0.ffn.gate", "layers.0.ffn.shared_experts.w1", "layers.0.ffn.experts.7.w3",
  // "head", "mtp.0.e_proj". Fused foreign tensors (gate_up_proj [E, 2I, D]) are
  // split into zero-copy per-expert views; each keeps its own scales.
  std::map<std::string, LinearWeight> linears;
  // Every other tensor by canonical full name, in its stored dtype: "embed.weight",
  // "norm.weight", "hc_head_fn", "layers.0.attn_norm.weight", "layers.0.hc_attn_fn",
  // "layers.0.attn.attn_sink", "layers.0.attn.kv_norm.weight", "layers.2.attn.compressor.ape",
  // "layers.0.ffn.gate.bias", "layers.0.ffn.gate.tid2eid", ...
  std::map<std::string, TensorView> tensors;
  std::vector<std::string> warnings;
  // How the files named things ("deepseek-native", "transformers-saved", "transformers") and
  // what their quantization config said (one line), for reports.
  std::string naming_scheme;
  std::string quantization;
  // Canonical name (linear module or tensor) -> the checkpoint's own name for it: the stored
  // module name of a linear ("model.layers.0.self_attn.q_a_proj"), the stored tensor name otherwise.
  std::map<std::string, std::string> stored_names;
  std::shared_ptr<const TensorSource> source;  // keeps the mapped files alive

  const LinearWeight& linear(const std::string& name) const;  // throws Error naming the module
  const TensorView& tensor(const std::string& name) const;    // throws Error naming the tensor
  bool has_linear(const std::string& name) const { return linears.count(name) != 0; }
  bool has_tensor(const std::string& name) const { return tensors.count(name) != 0; }
};

// Reads config.json (+ hf_quant_config.json), maps every tensor to a canonical
// name, detects each linear's encoding, validates the whole plan from headers
// (unknown tensors, missing tensors, shapes, dtypes, scale shapes and values),
// and only then pages data in. Throws Error naming the culprit.
Checkpoint load_checkpoint(const std::string& model_dir, const LoadOptions& options = {});

}  // namespace fp4serve
