// The flags every command that runs the model shares (logits, generate, serve, bench
// decode, bench perplexity): --device, --act-quant, --gpu-memory-utilization,
// --tensor-parallel-size and --enable-expert-parallel (vLLM's names), with one meaning
// everywhere (docs/ARCHITECTURE.md, "Numeric policy"; docs/PARALLELISM.md).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "runtime/engine.h"

namespace fp4serve::cli {

struct EngineFlags {
  std::string device = "auto";
  std::string act_quant = "auto";
  double gpu_memory_utilization = 0.9;
  int tensor_parallel_size = 1;
  bool enable_expert_parallel = false;

  void add_to(CLI::App& sub);
  // Parses the flags into `options` (Error naming the flag for a bad value).
  void apply(EngineOptions& options) const;
  DeviceChoice device_choice() const;
  ActQuantMode act_quant_mode() const;
};

}  // namespace fp4serve::cli
