// `fp4serve bench kernels [--json]`: the CUDA kernel workbench (backend/cuda/kernel_workbench.h)
// at DeepSeek-V4 shapes, beside the copy bandwidth and cuBLASLt measured in the same run.
#include <cstdio>
#include <memory>

#include "base/error.h"
#include "cli/command.h"
#include "backend/cuda_probe.h"
#ifdef FP4SERVE_HAVE_CUDA
#include "backend/cuda/kernel_workbench.h"
#endif

namespace fp4serve::cli {
namespace {

struct KernelBenchOptions {
  bool json = false;
  bool no_cublas = false;
  std::vector<std::string> models{"flash", "pro"};
  std::vector<int64_t> ms{1, 4, 16, 64, 256, 4096};
  std::vector<int64_t> moe_tokens{1, 8, 64};
  std::string only;
};

int run_kernel_bench(const KernelBenchOptions& o) {
#ifdef FP4SERVE_HAVE_CUDA
  if (cuda_device_count() == 0) {
    std::fprintf(stderr, "fp4serve bench kernels: no CUDA device\n");
    return 3;
  }
  cuda::WorkbenchOptions options;
  options.models = o.models;
  options.ms = o.ms;
  options.moe_tokens = o.moe_tokens;
  options.cublas = !o.no_cublas;
  options.matrix_filter = o.only;
  const auto report = cuda::run_kernel_workbench(
      options, [](const std::string& step) { std::fprintf(stderr, "bench kernels: %s\n", step.c_str()); });
  if (o.json) {
    std::printf("%s\n", cuda::workbench_json(report).dump(1).c_str());
  } else {
    std::fputs(cuda::workbench_markdown(report).c_str(), stdout);
  }
  return 0;
#else
  (void)o;
  std::fprintf(stderr, "fp4serve bench kernels: this build has no CUDA kernels (nvcc was not found)\n");
  return 3;
#endif
}

const RegisterBenchmark kernels{Command{
    "kernels", "CUDA GEMM kernels at DeepSeek-V4 shapes vs copy bandwidth and cuBLASLt",
    [](CLI::App& sub) -> std::function<int()> {
      auto o = std::make_shared<KernelBenchOptions>();
      sub.add_flag("--json", o->json, "print the results as JSON");
      sub.add_flag("--no-cublas", o->no_cublas, "skip the cuBLASLt baselines");
      sub.add_option("--models", o->models, "flash, pro")->delimiter(',');
      sub.add_option("--m", o->ms, "token counts")->delimiter(',');
      sub.add_option("--moe-tokens", o->moe_tokens, "MoE token counts")->delimiter(',');
      sub.add_option("--only", o->only, "only matrices whose name contains this");
      return [o] {
        try {
          return run_kernel_bench(*o);
        } catch (const Error& e) {
          std::fprintf(stderr, "fp4serve bench kernels: %s\n", e.what());
          return 1;
        }
      };
    }}};

}  // namespace
}  // namespace fp4serve::cli
