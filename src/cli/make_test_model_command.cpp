// `fp4serve make-test-model DIR --layout native|nvfp4|transformers-saved|bf16 --seed S [--preset P]
//  [--draft mtp|dspark|none]`.
#include <cstdio>
#include <memory>

#include "base/error.h"
#include "checkpoint/test_model.h"
#include "cli/command.h"

namespace fp4serve::cli {
namespace {

struct MakeArgs {
  std::string dir;
  std::string layout = "native";
  uint64_t seed = 0;
  std::string preset = "tiny";
  std::string draft = "mtp";
  std::string scope = "linears";
  double shard_gb = 1.0;
  bool sparse = false;
};

int run_make(const MakeArgs& a) {
  TestModelOptions options;
  if (!parse_output_layout(a.layout, &options.layout))
    fail("--layout '{}': expected native, nvfp4, transformers-saved or bf16", a.layout);
  if (a.scope != "experts" && a.scope != "linears") fail("--nvfp4-scope '{}': expected experts or linears", a.scope);
  options.nvfp4_scope = a.scope == "experts" ? Nvfp4Scope::kExperts : Nvfp4Scope::kLinears;
  options.seed = a.seed;
  options.preset = a.preset;
  if (!parse_draft_kind(a.draft, &options.draft)) fail("--draft '{}': expected mtp, dspark or none", a.draft);
  if (!(a.shard_gb > 0)) fail("--shard-gb must be positive");
  options.shard_bytes = static_cast<uint64_t>(a.shard_gb * 1e9);
  options.sparse = a.sparse;
  if (a.preset.rfind("v4-", 0) == 0 && !a.sparse)
    fail("--preset {} has the released model's full shapes (hundreds of GB of random weights): pass --sparse",
         a.preset);
  const WriteReport report = write_test_model(a.dir, options);
  std::printf("wrote %s: preset %s, draft %s, layout %s%s, seed %llu, %.1f MB in %zu shard(s)\n", a.dir.c_str(),
              a.preset.c_str(), a.draft.c_str(), a.layout.c_str(), a.sparse ? " (sparse: linears are holes)" : "",
              static_cast<unsigned long long>(a.seed), static_cast<double>(report.bytes) / 1e6,
              report.shards);
  for (const auto& note : report.notes) std::printf("note: %s\n", note.c_str());
  return 0;
}

const RegisterCommand make_test_model{Command{
    "make-test-model", "Write a tiny random DeepSeek-V4 checkpoint (deterministic from --seed) in any layout",
    [](CLI::App& sub) -> std::function<int()> {
      auto args = std::make_shared<MakeArgs>();
      sub.add_option("DIR", args->dir, "Output directory")->required();
      sub.add_option("--layout", args->layout, "native | nvfp4 | transformers-saved | bf16")->capture_default_str();
      sub.add_option("--seed", args->seed, "Random seed")->capture_default_str();
      sub.add_option("--preset", args->preset, "tiny | tiny-pro | tiny-tp | small | large | flash | v4-flash | v4-pro")->capture_default_str();
      sub.add_option("--draft", args->draft, "mtp (one classic MTP block) | dspark (3-stage DSpark drafter) | none")
          ->capture_default_str();
      sub.add_option("--nvfp4-scope", args->scope, "For --layout nvfp4: experts | linears")->capture_default_str();
      sub.add_option("--shard-gb", args->shard_gb, "Shard size in GB")->capture_default_str();
      sub.add_flag("--sparse", args->sparse,
                   "Headers only: linears (and tensors over 1 MiB) are holes; for plan / inspect on full-size shapes");
      return [args] { return run_make(*args); };
    }}};

}  // namespace
}  // namespace fp4serve::cli
