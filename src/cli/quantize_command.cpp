// `fp4serve quantize SRC DST --to native|nvfp4 [--nvfp4-scope experts|linears]
//  [--calibrate-tokens FILE.u16|FILE.txt [--calibrate-window 512]]`.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "checkpoint/quantize_checkpoint.h"
#include "cli/command.h"
#include "io/token_ids_file.h"
#include "backend/backend.h"
#include "model/model.h"
#include "text/tokenizer.h"

namespace fp4serve::cli {
namespace {

struct QuantizeArgs {
  std::string source;
  std::string output;
  std::string to;
  std::string scope = "linears";
  std::string report_path;
  size_t show = 40;
  std::string calibrate_tokens;
  int64_t calibrate_window = 512;
  std::string act_quant = "auto";  // the source model's numeric policy while calibrating
};

// Calibration tokens: a .u16 file as is, or a .txt file tokenized as one string with the
// source's tokenizer.json, so special tokens written in it (<｜begin▁of▁sentence｜> ...
// <｜end▁of▁sentence｜> around each document) become their ids.
std::vector<int32_t> calibration_tokens(const std::string& path, const std::string& source_dir) {
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".u16") return read_u16_token_ids(path);
  if (ext != ".txt") fail("--calibrate-tokens {}: expected a .u16 token-id file or a .txt text file", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open the calibration text", path);
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  const std::string tokenizer_path = source_dir + "/tokenizer.json";
  FP4SERVE_CHECK(std::filesystem::exists(tokenizer_path), "--calibrate-tokens {}: {} not found to tokenize the text",
                 path, tokenizer_path);
  std::vector<int32_t> ids;
  for (uint32_t id : text::Tokenizer::from_file(tokenizer_path).encode(text)) ids.push_back(static_cast<int32_t>(id));
  FP4SERVE_CHECK(!ids.empty(), "{}: the calibration text is empty", path);
  return ids;
}

// The source model, run as it runs in fp4serve, over the calibration windows (each from
// position 0, as the perplexity protocol), with an amax recorder on every linear's input.
std::map<std::string, ObservedInput> run_calibration(const Checkpoint& source, const std::vector<int32_t>& tokens,
                                                     int64_t window, ActQuantMode act_quant) {
  for (size_t i = 0; i < tokens.size(); ++i)
    FP4SERVE_CHECK(tokens[i] >= 0 && tokens[i] < source.config.vocab_size,
                   "calibration token {} is id {}, outside the model's vocabulary [0, {})", i, tokens[i],
                   source.config.vocab_size);
  // On the CPU: its observer sees every linear's input on the host, in the source's own numerics.
  const std::unique_ptr<Backend> backend = make_backend(DeviceKind::kCpu);
  Model model(*backend, source.config, source.linears, source.tensors, ModelOptions{act_quant, window});
  InputAmaxRecorder recorder;
  backend->set_activation_observer(&recorder);
  std::vector<float> logits;
  const auto windows = token_windows(tokens, window);
  for (const auto& w : windows) {
    constexpr SequenceId kWindow = 0;
    model.create_sequence(kWindow);
    const StepItem item{kWindow, 0, w, LogitsMode::kLast};  // the head is a linear to calibrate too
    logits.clear();
    model.forward(std::span<const StepItem>(&item, 1), logits);
    model.free_sequence(kWindow);
  }
  backend->set_activation_observer(nullptr);
  std::printf("calibrated on %zu tokens in %zu windows of up to %lld\n", tokens.size(), windows.size(),
              static_cast<long long>(window));
  return recorder.observed();
}

void print_calibration(const InputCalibration& c) {
  std::printf("input_scale written for %zu NVFP4 linears (amax / 2688)\n", c.amax.size());
  if (!c.filled_from_layer.empty()) {
    std::printf("%zu routed-expert projections never reached by calibration took the max of their layer's reached "
                "experts (ModelOpt's rule):\n", c.filled_from_layer.size());
    for (const auto& name : c.filled_from_layer) std::printf("  %s\n", name.c_str());
  }
  if (!c.filled_with_fallback.empty()) {
    std::printf("%zu routed-expert projections in layers no calibration token reached took amax %.1f (ModelOpt's "
                "fallback):\n", c.filled_with_fallback.size(), double(kUncalibratedLayerAmax));
    for (const auto& name : c.filled_with_fallback) std::printf("  %s\n", name.c_str());
  }
}

int run_quantize(const QuantizeArgs& a) {
  ActQuantMode act_quant;
  FP4SERVE_CHECK(parse_act_quant(a.act_quant, &act_quant), "--act-quant {}: expected auto, fp8 or off", a.act_quant);
  FP4SERVE_CHECK(a.act_quant == "auto" || !a.calibrate_tokens.empty(),
                 "--act-quant {}: quantize runs the model only with --calibrate-tokens", a.act_quant);
  WriterOptions options;
  if (a.to != "native" && a.to != "nvfp4" && a.to != "bf16")
    fail("--to '{}': expected native or nvfp4 (or bf16)", a.to);
  parse_output_layout(a.to, &options.layout);
  if (a.scope != "experts" && a.scope != "linears") fail("--nvfp4-scope '{}': expected experts or linears", a.scope);
  options.nvfp4_scope = a.scope == "experts" ? Nvfp4Scope::kExperts : Nvfp4Scope::kLinears;
  ActivationCalibrator calibrate;
  if (!a.calibrate_tokens.empty()) {
    const std::vector<int32_t> tokens = calibration_tokens(a.calibrate_tokens, a.source);
    const int64_t window = a.calibrate_window;
    FP4SERVE_CHECK(window > 0, "--calibrate-window {}: expected a positive number of tokens", window);
    calibrate = [tokens, window, act_quant](const Checkpoint& source) {
      return run_calibration(source, tokens, window, act_quant);
    };
  }
  const QuantizeResult result = quantize_checkpoint(a.source, a.output, options, /*show_progress=*/true, calibrate);
  if (result.calibration) print_calibration(*result.calibration);
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
  std::string copied;
  for (const auto& name : result.companions.copied) copied += " " + name;
  std::printf("copied from the source:%s\n", copied.empty() ? " nothing (no tokenizer or generation config there)" : copied.c_str());
  for (const auto& skipped : result.companions.skipped) std::printf("not copied: %s\n", skipped.c_str());
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
      sub.add_option("--calibrate-tokens", args->calibrate_tokens,
                     "nvfp4: record activation amax over these tokens (.u16: raw uint16 LE ids; .txt: text tokenized "
                     "with SRC/tokenizer.json, special tokens included) and write input_scale, quant_algo NVFP4");
      sub.add_option("--calibrate-window", args->calibrate_window,
                     "Calibration window in tokens; each window runs from position 0")->capture_default_str();
      sub.add_option("--act-quant", args->act_quant,
                     "The source model's numeric policy while calibrating (auto, fp8, off; docs/ARCHITECTURE.md)")
          ->capture_default_str();
      return [args] { return run_quantize(*args); };
    }}};

}  // namespace
}  // namespace fp4serve::cli
