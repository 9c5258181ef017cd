// `fp4serve quantize SRC DST --to native|nvfp4 [--nvfp4-scope experts|linears]`.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "checkpoint/quantize_checkpoint.h"
#include "cli/command.h"

namespace fp4serve::cli {
namespace {

struct QuantizeArgs {
  std::string source;
  std::string output;
  std::string to;
  std::string scope = "linears";
  std::string report_path;
  size_t show = 40;
};

int run_quantize(const QuantizeArgs& a) {
  WriterOptions options;
  if (a.to != "native" && a.to != "nvfp4" && a.to != "bf16")
    fail("--to '{}': expected native or nvfp4 (or bf16)", a.to);
  parse_output_layout(a.to, &options.layout);
  if (a.scope != "experts" && a.scope != "linears") fail("--nvfp4-scope '{}': expected experts or linears", a.scope);
  options.nvfp4_scope = a.scope == "experts" ? Nvfp4Scope::kExperts : Nvfp4Scope::kLinears;
  const QuantizeResult result = quantize_checkpoint(a.source, a.output, options, /*show_progress=*/true);
  const auto& modules = result.report.modules;

  // Per-module relative RMS error: all modules when few, else the worst ones, plus a summary per encoding.
  std::vector<const ModuleError*> sorted;
  for (const auto& m : modules) sorted.push_back(&m);
  std::sort(sorted.begin(), sorted.end(), [](auto* x, auto* y) { return x->relative_rms > y->relative_rms; });
  const size_t shown = std::min(sorted.size(), a.show);
  std::printf("relative RMS error per module (%s%zu of %zu, worst first)\n", shown < sorted.size() ? "worst " : "",
              shown, sorted.size());
  for (size_t i = 0; i < shown; ++i)
    std::printf("  %-44s %-10s %.3e\n", sorted[i]->name.c_str(), std::string(encoding_name(sorted[i]->encoding)).c_str(),
                sorted[i]->relative_rms);
  std::map<std::string, std::pair<double, size_t>> per_encoding;
  for (const auto& m : modules) {
    auto& [sum, count] = per_encoding[std::string(encoding_name(m.encoding))];
    sum += m.relative_rms;
    ++count;
  }
  std::printf("mean relative RMS error per encoding\n");
  for (const auto& [encoding, sc] : per_encoding)
    std::printf("  %-10s %6zu modules  %.3e\n", encoding.c_str(), sc.second, sc.first / double(sc.second));
  for (const auto& note : result.report.notes) std::printf("note: %s\n", note.c_str());
  std::printf("wrote %s: layout %s, %.1f MB in %zu shard(s); re-loaded: %zu linears, %zu tensors, %zu warning(s)\n",
              a.output.c_str(), result.output.layout.c_str(), double(result.report.bytes) / 1e6, result.report.shards,
              result.output.linears.size(), result.output.tensors.size(), result.output.warnings.size());
  if (!a.report_path.empty()) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& m : modules)
      j.push_back({{"name", m.name}, {"encoding", std::string(encoding_name(m.encoding))}, {"relative_rms", m.relative_rms}});
    std::ofstream(a.report_path) << j.dump(2) << "\n";
  }
  return 0;
}

const RegisterCommand quantize{Command{
    "quantize", "Convert a checkpoint to DeepSeek-native (FP8 + MXFP4) or ModelOpt NVFP4, reporting the error",
    [](CLI::App& sub) -> std::function<int()> {
      auto args = std::make_shared<QuantizeArgs>();
      sub.add_option("SRC", args->source, "Source checkpoint directory (any supported layout)")->required();
      sub.add_option("DST", args->output, "Output directory (new or empty)")->required();
      sub.add_option("--to", args->to, "native | nvfp4")->required();
      sub.add_option("--nvfp4-scope", args->scope, "experts (NVIDIA's recipe) | linears (every linear but the "
                                                   "excluded ones)")->capture_default_str();
      sub.add_option("--report", args->report_path, "Write every module's relative RMS error to this JSON file");
      sub.add_option("--show", args->show, "How many modules to list (worst first)")->capture_default_str();
      return [args] { return run_quantize(*args); };
    }}};

}  // namespace
}  // namespace fp4serve::cli
