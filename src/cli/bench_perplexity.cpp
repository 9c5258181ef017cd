// `fp4serve bench perplexity MODEL_DIR --tokens FILE.u16 [--window 512]`: held-out
// perplexity in our engine, by the default model's protocol (docs/DEFAULT_MODEL.md):
// the token stream cut into consecutive windows, each run as an independent sequence
// from position 0, every token but a window's first predicted; perplexity =
// exp(mean negative log-likelihood), the log-softmax taken in double.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "base/error.h"
#include "cli/command.h"
#include "cli/engine_flags.h"
#include "io/token_ids_file.h"
#include "runtime/engine.h"

namespace fp4serve::cli {
namespace {

struct PerplexityArgs {
  std::string model_dir;
  std::string tokens_path;
  int64_t window = 512;
  int64_t max_windows = 0;  // 0 = all
  EngineFlags engine;
  std::string json_path;
};

// -log softmax(logits)[target], in double.
double negative_log_likelihood(const float* logits, int64_t vocab, int32_t target) {
  double max_logit = -INFINITY;
  for (int64_t v = 0; v < vocab; ++v) max_logit = std::max(max_logit, double(logits[v]));
  double sum = 0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp(double(logits[v]) - max_logit);
  return max_logit + std::log(sum) - double(logits[target]);
}

int run_perplexity(const PerplexityArgs& a) {
  EngineOptions options;
  a.engine.apply(options);  // bad flags before any file is read
  const std::vector<int32_t> tokens = read_u16_token_ids(a.tokens_path);
  std::vector<std::span<const int32_t>> windows = token_windows(tokens, a.window);
  if (a.max_windows > 0 && static_cast<size_t>(a.max_windows) < windows.size()) windows.resize(static_cast<size_t>(a.max_windows));

  options.reserve_tokens = a.window;
  options.show_progress = false;
  auto engine = Engine::open(a.model_dir, options);
  const int64_t V = engine->config().vocab_size;
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] >= V) fail("{}: token {} is id {}, outside the model's vocabulary [0, {})", a.tokens_path, i, tokens[i], V);

  const auto t0 = std::chrono::steady_clock::now();
  double total_nll = 0;
  int64_t predicted = 0;
  nlohmann::json per_window = nlohmann::json::array();
  std::vector<float> logits;
  for (const auto& w : windows) {
    if (w.size() < 2) continue;  // nothing to predict
    constexpr SequenceId kWindow = 0;
    engine->create_sequence(kWindow);
    logits.clear();
    const StepItem item{kWindow, 0, w, LogitsMode::kAll};
    engine->step(std::span<const StepItem>(&item, 1), logits);
    engine->free_sequence(kWindow);
    double nll = 0;
    for (size_t t = 0; t + 1 < w.size(); ++t) nll += negative_log_likelihood(logits.data() + t * V, V, w[t + 1]);
    total_nll += nll;
    predicted += static_cast<int64_t>(w.size()) - 1;
    per_window.push_back({{"tokens", w.size()}, {"nll_sum", nll}});
  }
  FP4SERVE_CHECK(predicted > 0, "{}: no window has two tokens: nothing to predict", a.tokens_path);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double loss = total_nll / double(predicted);
  std::printf("%s: %zu windows of up to %lld tokens, %lld predicted tokens\n", a.model_dir.c_str(), per_window.size(),
              static_cast<long long>(a.window), static_cast<long long>(predicted));
  std::printf("loss %.5f nats/token, perplexity %.3f (act-quant %s)\n", loss, std::exp(loss), a.engine.act_quant.c_str());
  std::printf("%.2f s, %.0f tokens/s\n", seconds, double(predicted + static_cast<int64_t>(per_window.size())) / seconds);
  if (!a.json_path.empty()) {
    const nlohmann::json j = {{"model_dir", a.model_dir}, {"tokens_file", a.tokens_path}, {"window", a.window},
                              {"act_quant", a.engine.act_quant}, {"device", engine->backend().description()}, {"predicted_tokens", predicted}, {"loss", loss},
                              {"perplexity", std::exp(loss)}, {"seconds", seconds}, {"windows", per_window}};
    std::ofstream out(a.json_path);
    out << j.dump(2) << "\n";
    if (!out) fail("{}: cannot write", a.json_path);
  }
  return 0;
}

const RegisterBenchmark perplexity{Command{
    "perplexity", "Held-out perplexity of a model over a uint16 token-id file, in windows from position 0",
    [](CLI::App& sub) -> std::function<int()> {
      auto a = std::make_shared<PerplexityArgs>();
      sub.add_option("MODEL_DIR", a->model_dir, "Checkpoint directory")->required();
      sub.add_option("--tokens", a->tokens_path, "Token ids, raw uint16 little-endian (e.g. heldout_tokens.u16)")->required();
      sub.add_option("--window", a->window, "Tokens per window; each window starts at position 0")->capture_default_str();
      sub.add_option("--max-windows", a->max_windows, "Only the first N windows (0 = all)")->capture_default_str();
      a->engine.add_to(sub);
      sub.add_option("--json", a->json_path, "Also write the result and per-window NLL sums to this JSON file");
      return [a] { return run_perplexity(*a); };
    }}};

}  // namespace
}  // namespace fp4serve::cli
