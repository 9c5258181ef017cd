// build/bin/kernel_workbench: the CUDA kernel workbench (kernel_workbench.h) at DeepSeek-V4
// shapes, beside the copy bandwidth and cuBLASLt measured in the same run. Writes the markdown
// table to stdout and, with --json FILE, the full results; progress goes to stderr.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>

#include "backend/cuda_probe.h"
#include "base/error.h"
#include "kernel_workbench.h"

int main(int argc, char** argv) {
  CLI::App app{"fp4serve CUDA kernel workbench"};
  fp4serve::cuda::WorkbenchOptions options;
  std::string json_path;
  bool no_cublas = false;
  app.add_option("--json", json_path, "also write the results as JSON to this file");
  app.add_option("--models", options.models, "flash, pro")->delimiter(',');
  app.add_option("--m", options.ms, "token counts")->delimiter(',');
  app.add_option("--moe-tokens", options.moe_tokens, "MoE token counts (empty: skip)")->delimiter(',');
  app.add_flag("--no-cublas", no_cublas, "skip the cuBLASLt baselines");
  app.add_option("--only", options.matrix_filter, "only matrices whose name contains this");
  app.add_option("--variants", options.variants,
                 "decode variants of bench/cuda/dev/ to time beside the product's kernel (names, or all)")
      ->delimiter(',');
  CLI11_PARSE(app, argc, argv);
  options.cublas = !no_cublas;
  if (fp4serve::cuda_device_count() == 0) {
    std::fprintf(stderr, "kernel_workbench: no CUDA device\n");
    return 3;
  }
  try {
    const auto report = fp4serve::cuda::run_kernel_workbench(
        options, [](const std::string& step) { std::fprintf(stderr, "workbench: %s\n", step.c_str()); });
    std::fputs(fp4serve::cuda::workbench_markdown(report).c_str(), stdout);
    if (!json_path.empty()) {
      std::ofstream json(json_path);
      json << fp4serve::cuda::workbench_json(report).dump(1) << "\n";
      if (!json) {
        std::fprintf(stderr, "kernel_workbench: could not write %s\n", json_path.c_str());
        return 2;
      }
    }
    return 0;
  } catch (const fp4serve::Error& e) {
    std::fprintf(stderr, "kernel_workbench: %s\n", e.what());
    return 2;
  }
}
