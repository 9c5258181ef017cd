// `fp4serve generate MODEL_DIR (--tokens LIST | --prompt TEXT) --max-tokens N
// [--temperature T --top-p P --seed S] [--top-k K --min-p M]`: prefill, then sample
// up to N tokens (stops at the end-of-sequence token) with the server's sampler, so a
// seed gives the same tokens here as in a request with the same settings. With --tokens it prints the generated ids; with --prompt
// (tokenized by MODEL_DIR/tokenizer.json after a BOS token) it streams the text.
// Speed goes to stderr. With --speculative-config the tokens come from speculative decoding
// (the serving scheduler's), and stderr also gets the drafts and the acceptance.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "base/error.h"
#include "cli/command.h"
#include "cli/engine_flags.h"
#include "runtime/engine.h"
#include "runtime/engine_step_model.h"
#include "runtime/scheduler.h"
#include "runtime/speculative_config.h"
#include "runtime/sampler.h"
#include "runtime/token_list.h"
#include "text/tokenizer.h"
#include "text/tokenizer_config.h"

namespace fp4serve::cli {
namespace {

struct GenerateArgs {
  std::string model_dir, tokens, prompt;
  int64_t max_tokens = 0;
  double temperature = 0.0, top_p = 1.0, min_p = 0.0;
  int top_k = 0;
  uint64_t seed = 0;
  std::string speculative_config;  // vLLM's JSON; "" = none
  EngineFlags engine;
};

// With --speculative-config: the request goes through the serving scheduler (which drafts,
// verifies and rolls back), one sequence; tokens are printed as they are accepted.
int generate_speculative(std::unique_ptr<Engine> engine, const runtime::SpeculativeConfig& spec, const std::vector<int32_t>& prompt,
                         const runtime::SamplingParams& sampling, int64_t max_tokens, std::optional<text::IncrementalDecoder>& stream) {
  const int32_t eos = static_cast<int32_t>(engine->config().eos_token_id);
  runtime::EngineStepModel model(std::move(engine), spec);
  runtime::SchedulerMetrics metrics;
  runtime::SchedulerConfig config;
  config.max_num_seqs = 1;
  config.max_batched_tokens = std::max<int64_t>(512, spec.num_speculative_tokens + 1);
  runtime::GenerationRequest request;
  request.prompt = prompt;
  request.sampling = sampling;
  request.max_new_tokens = max_tokens;
  request.stop_token_ids = {eos};
  const auto t0 = std::chrono::steady_clock::now();
  size_t generated = 0;
  std::optional<runtime::Finish> finish;
  {
    runtime::Scheduler scheduler(model, config, metrics);
    auto streams = scheduler.submit({request});
    while (!finish) {
      runtime::GenerationStream::Update u = streams.at(0)->wait(std::chrono::milliseconds(100));
      for (const runtime::SampledToken& t : u.tokens) {
        if (stream) std::fputs(stream->push(static_cast<uint32_t>(t.token)).c_str(), stdout);
        else std::printf(generated == 0 ? "%d" : ",%d", t.token);
        ++generated;
      }
      std::fflush(stdout);
      finish = u.finish;
    }
  }
  if (stream) std::fputs(stream->finish().c_str(), stdout);
  std::printf("\n");
  std::fflush(stdout);
  FP4SERVE_CHECK(finish->error.empty(), "generate: {}", finish->error);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto c = metrics.counters();
  std::fprintf(stderr, "prefill %zu tokens and generated %zu tokens in %.3f s; %llu drafts, %llu drafted tokens, %llu accepted "
               "(mean acceptance length %.2f)\n",
               prompt.size(), generated, seconds, static_cast<unsigned long long>(c.spec_drafts),
               static_cast<unsigned long long>(c.spec_draft_tokens), static_cast<unsigned long long>(c.spec_accepted_tokens),
               c.spec_drafts > 0 ? 1.0 + static_cast<double>(c.spec_accepted_tokens) / static_cast<double>(c.spec_drafts) : 0.0);
  return 0;
}

int run_generate(const GenerateArgs& a) {
  FP4SERVE_CHECK(a.tokens.empty() != a.prompt.empty(), "generate: give exactly one of --tokens or --prompt");
  FP4SERVE_CHECK(a.max_tokens > 0, "--max-tokens {} must be positive", a.max_tokens);
  runtime::SamplingParams sampling;
  sampling.temperature = a.temperature;
  sampling.top_p = a.top_p;
  sampling.top_k = a.top_k;
  sampling.min_p = a.min_p;
  sampling.seed = a.seed;
  runtime::check_sampling_params(sampling);  // before the model is loaded
  const runtime::SpeculativeConfig spec = runtime::parse_speculative_config(a.speculative_config);
  runtime::check_speculation_alone(spec, a.engine.tensor_parallel_size, a.engine.enable_expert_parallel);
  std::optional<text::Tokenizer> tokenizer;
  std::vector<int32_t> prompt;
  bool add_bos = false;
  if (!a.prompt.empty()) {
    const std::string path = a.model_dir + "/tokenizer.json";
    FP4SERVE_CHECK(std::filesystem::exists(path), "generate --prompt: {} not found (the tokenizer of the model)", path);
    tokenizer.emplace(text::Tokenizer::from_file(path));
    add_bos = text::tokenizer_adds_bos(path);  // as the server treats plain prompts
  } else {
    prompt = parse_token_list(a.tokens);
  }
  EngineOptions options;
  a.engine.apply(options);
  options.speculative = spec.enabled();
  options.reserve_tokens = static_cast<int64_t>(prompt.size() + a.prompt.size()) + 1 + a.max_tokens;  // bytes >= tokens
  auto engine = Engine::open(a.model_dir, options);
  if (tokenizer) {
    if (add_bos) prompt.push_back(static_cast<int32_t>(engine->config().bos_token_id));
    for (uint32_t id : tokenizer->encode(a.prompt)) prompt.push_back(static_cast<int32_t>(id));
  }
  std::optional<text::IncrementalDecoder> stream;
  if (tokenizer) stream.emplace(*tokenizer, true);
  if (spec.enabled()) return generate_speculative(std::move(engine), spec, prompt, sampling, a.max_tokens, stream);
  runtime::SequenceSampler sampler(sampling, prompt);
  constexpr SequenceId kSequence = 0;
  engine->create_sequence(kSequence);
  const int64_t V = engine->config().vocab_size;
  std::vector<float> logits;
  std::vector<int32_t> generated;
  const auto t0 = std::chrono::steady_clock::now();
  StepItem item{kSequence, 0, prompt, LogitsMode::kLast};
  engine->step(std::span<const StepItem>(&item, 1), logits);
  const auto t1 = std::chrono::steady_clock::now();
  int32_t next = 0;
  for (int64_t i = 0; i < a.max_tokens; ++i) {
    next = sampler.sample(std::span<const float>(logits.data() + logits.size() - V, static_cast<size_t>(V))).token;
    generated.push_back(next);
    if (stream) {
      std::fputs(stream->push(static_cast<uint32_t>(next)).c_str(), stdout);
    } else {
      std::printf(i == 0 ? "%d" : ",%d", next);
    }
    std::fflush(stdout);
    if (next == engine->config().eos_token_id || i + 1 == a.max_tokens) break;
    logits.clear();
    item = StepItem{kSequence, static_cast<int64_t>(prompt.size() + generated.size()) - 1,
                    std::span<const int32_t>(&generated.back(), 1), LogitsMode::kLast};
    engine->step(std::span<const StepItem>(&item, 1), logits);
  }
  if (stream) std::fputs(stream->finish().c_str(), stdout);
  std::printf("\n");
  std::fflush(stdout);
  const auto t2 = std::chrono::steady_clock::now();
  const double prefill_s = std::chrono::duration<double>(t1 - t0).count();
  const double decode_s = std::chrono::duration<double>(t2 - t1).count();
  std::fprintf(stderr, "prefill %zu tokens in %.3f s; generated %zu tokens at %.2f tokens/s\n", prompt.size(), prefill_s,
               generated.size(), generated.size() > 1 ? static_cast<double>(generated.size() - 1) / decode_s : 0.0);
  return 0;
}

const RegisterCommand generate_command{Command{
    "generate", "Generate tokens from a prompt", [](CLI::App& sub) -> std::function<int()> {
      auto a = std::make_shared<GenerateArgs>();
      sub.add_option("model_dir", a->model_dir, "Checkpoint directory")->required();
      sub.add_option("--tokens", a->tokens, "Prompt as comma-separated token ids");
      sub.add_option("--prompt", a->prompt, "Prompt text (MODEL_DIR/tokenizer.json; a BOS token is prepended)");
      sub.add_option("--max-tokens", a->max_tokens, "Tokens to generate")->required();
      sub.add_option("--temperature", a->temperature, "0 = greedy (default)");
      sub.add_option("--top-p", a->top_p, "Nucleus sampling mass (default 1)");
      sub.add_option("--seed", a->seed, "Sampling seed (default 0)");
      sub.add_option("--top-k", a->top_k, "Keep the k most likely tokens (default 0: off)");
      sub.add_option("--min-p", a->min_p, "Drop tokens less likely than min_p times the most likely (default 0)");
      sub.add_option("--speculative-config", a->speculative_config,
                     "Speculative decoding, as vLLM: '{\"method\": \"dspark\"|\"mtp\", \"num_speculative_tokens\": K}'");
      a->engine.add_to(sub);
      return [a] { return run_generate(*a); };
    }}};

}  // namespace
}  // namespace fp4serve::cli
