// `fp4serve inspect MODEL_DIR [--json] [--check-values]` and
// `fp4serve inspect MODEL_DIR --tensor NAME --dequant --out FILE.safetensors`.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/inspect_report.h"
#include "cli/command.h"
#include "io/safetensors.h"

namespace fp4serve::cli {
namespace {

struct InspectArgs {
  std::string model_dir;
  bool json = false;
  std::string tensor;
  bool dequant = false;
  std::string out;
  bool check_values = false;
};

int run_inspect(const InspectArgs& a) {
  LoadOptions options;
  options.show_progress = true;
  // A report reads headers only (seconds on a checkpoint of hundreds of GB); the value
  // checks read every block scale and tid2eid row; a dequant reads the one tensor it needs.
  options.page_in = false;
  options.check_values = a.check_values;
  const Checkpoint ck = load_checkpoint(a.model_dir, options);
  if (!a.tensor.empty()) {
    const ResolvedName name = resolve_tensor_name(ck, a.tensor);
    if (!a.dequant) {
      const nlohmann::json report = inspect_json(ck, a.model_dir);
      for (const char* section : {"modules", "tensors"})
        for (const auto& entry : report[section])
          if (entry["name"] == name.canonical) std::printf("%s\n", entry.dump(2).c_str());
      return 0;
    }
    if (a.out.empty()) fail("inspect --dequant needs --out FILE.safetensors");
    write_safetensors(a.out, {NamedTensor{"weight", dequantized_tensor(ck, name)}},
                      {{"source", a.model_dir}, {"tensor", name.canonical}});
    std::fprintf(stderr, "wrote %s: %s as F32 tensor 'weight'\n", a.out.c_str(), name.canonical.c_str());
    return 0;
  }
  if (a.dequant) fail("inspect --dequant needs --tensor NAME");
  if (a.json) {
    std::printf("%s\n", inspect_json(ck, a.model_dir).dump(2).c_str());
  } else {
    std::printf("%s", inspect_text(ck, a.model_dir).c_str());
  }
  return 0;
}

const RegisterCommand inspect{Command{
    "inspect", "Describe a checkpoint: layout, layer schedule, encodings, memory; or dequantize one tensor",
    [](CLI::App& sub) -> std::function<int()> {
      auto args = std::make_shared<InspectArgs>();
      sub.add_option("MODEL_DIR", args->model_dir, "Checkpoint directory (config.json + safetensors)")->required();
      sub.add_flag("--json", args->json, "Print the report as JSON");
      sub.add_option("--tensor", args->tensor, "A linear or tensor, by canonical or the checkpoint's own name");
      sub.add_flag("--dequant", args->dequant, "Write the tensor dequantized to float32 (needs --tensor and --out)");
      sub.add_option("--out", args->out, "Output .safetensors file for --dequant (tensor 'weight')");
      sub.add_flag("--check-values", args->check_values,
                   "Also read every block scale (NaN/Inf/zero/negative) and tid2eid row (ids in range, distinct)");
      return [args] { return run_inspect(*args); };
    }}};

}  // namespace
}  // namespace fp4serve::cli
