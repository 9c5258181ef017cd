// The flags every command that runs the model shares (logits, generate, serve, bench
// decode, bench perplexity): --device, --act-quant and --gpu-memory-utilization, with
// one meaning everywhere (docs/ARCHITECTURE.md, "Numeric policy").
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "runtime/engine.h"

namespace fp4serve::cli {

struct EngineFlags {
  std::string device = "auto";
  std::string act_quant = "auto";
  double gpu_memory_utilization = 0.9;

  void add_to(CLI::App& sub);
  // Parses the flags into `options` (Error naming the flag for a bad value).
  void apply(EngineOptions& options) const;
  DeviceChoice device_choice() const;
  ActQuantMode act_quant_mode() const;
};

}  // namespace fp4serve::cli
