// `fp4serve bench serve`: load test of the OpenAI server. Streams completions
// at each concurrency level and reports requests/s, output tokens/s and
// latency percentiles (time to first token, time per output token, end to
// end). Targets: a running server (--url), an in-process server on a checkpoint
// (--model-dir; then the same work also runs on the engine alone, without HTTP
// or scheduler, so the serving overhead shows), or an in-process server on the
// fake model (the serving stack's own cost).
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <sstream>
#include <thread>

#include "base/error.h"
#include "runtime/speculative_config.h"
#include "base/version.h"
#include "cli/command.h"
#include "runtime/engine_fake_model.h"
#include "runtime/engine_step_model.h"
#include "runtime/scheduler.h"
#include "server/byte_level_text.h"
#include "server/completion_service.h"
#include "server/deepseek_text.h"
#include "server/http_server.h"

namespace fp4serve::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchOptions {
  std::string url;
  std::string model_dir;
  std::string model;
  std::vector<int> concurrency = {1, 8, 64};
  int requests_per_level = 0;  // 0: 4 x concurrency, at least 16
  int prompt_tokens = 128;
  int max_tokens = 64;
  int fake_step_delay_us = 0;
  int64_t max_batched_tokens = 512;
  std::string speculative_config;  // with --model-dir: vLLM's JSON for the served model
  double abort_fraction = 0;  // of requests, which hang up after their first token (soak tests)
};

// Prompts are token ids (exact lengths on any tokenizer), drawn from [16, 256):
// in the vocabulary of the byte-level stand-in and of real BPE models alike.
std::vector<std::vector<int32_t>> random_prompts(std::mt19937& rng, int count, int length) {
  std::vector<std::vector<int32_t>> prompts(count);
  for (auto& p : prompts) {
    for (int i = 0; i < length; ++i) p.push_back(16 + static_cast<int32_t>(rng() % 240));
  }
  return prompts;
}

struct Sample {
  double ttft = 0, tpot = 0, e2e = 0;
  int64_t output_tokens = 0;
  bool ok = false;
  bool aborted = false;  // hung up on purpose after the first token
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// One streamed completion; TTFT is the first event carrying text. With
// `abort`, the client closes the connection right after that first text.
Sample stream_one(const std::string& host, int port, const std::string& body, bool abort) {
  httplib::Client client(host, port);
  client.set_read_timeout(600, 0);
  Sample s;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.headers = {{"Content-Type", "application/json"}};
  req.body = body;
  std::string buffer;
  const Clock::time_point start = Clock::now();
  bool first = true;
  req.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
    buffer.append(data, length);
    size_t end;
    while ((end = buffer.find("\n\n")) != std::string::npos) {
      std::string event = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      if (event.rfind("data: ", 0) != 0 || event == "data: [DONE]") continue;
      auto j = nlohmann::json::parse(event.substr(6), nullptr, false);
      if (j.is_discarded()) continue;
      if (j.contains("usage") && j["usage"].is_object()) s.output_tokens = j["usage"]["completion_tokens"];
      if (first && j.contains("choices") && !j["choices"].empty() && !j["choices"][0]["text"].get<std::string>().empty()) {
        first = false;
        s.ttft = std::chrono::duration<double>(Clock::now() - start).count();
        if (abort) {
          s.aborted = true;
          return false;
        }
      }
    }
    return true;
  };
  httplib::Response res;
  httplib::Error error;
  s.ok = client.send(req, res, error) && res.status == 200 && s.output_tokens > 0;
  s.e2e = std::chrono::duration<double>(Clock::now() - start).count();
  if (s.output_tokens > 1) s.tpot = (s.e2e - s.ttft) / static_cast<double>(s.output_tokens - 1);
  return s;
}

// One batch without the server: the prompts in steps of at most
// max_batched_tokens, then max_tokens decode steps of all of them together,
// sampled with the server's sampler at its defaults (temperature 1).
void engine_batch(runtime::EngineStepModel& model, const std::vector<std::vector<int32_t>>& prompts,
                  const BenchOptions& o) {
  const size_t vocab = static_cast<size_t>(model.vocab_size());
  const SequenceId first_id = 1;
  std::vector<runtime::SequenceSampler> samplers;
  for (size_t i = 0; i < prompts.size(); ++i) {
    model.create_sequence(first_id + i);
    runtime::SamplingParams params;
    params.seed = i;
    samplers.emplace_back(params, prompts[i]);
  }
  std::vector<int32_t> last(prompts.size());
  std::vector<float> logits;
  std::vector<StepItem> work;
  // Prefill, whole prompts packed into steps of the token budget.
  for (size_t i = 0; i < prompts.size();) {
    work.clear();
    int64_t budget = o.max_batched_tokens;
    for (; i < prompts.size() && (work.empty() || static_cast<int64_t>(prompts[i].size()) <= budget); ++i) {
      work.push_back({first_id + i, 0, prompts[i], LogitsMode::kLast});
      budget -= static_cast<int64_t>(prompts[i].size());
    }
    logits.resize(work.size() * vocab);
    model.step(work, logits);
    for (size_t k = 0; k < work.size(); ++k) {
      const size_t seq = work[k].sequence - first_id;
      last[seq] = samplers[seq].sample(std::span<const float>(logits.data() + k * vocab, vocab)).token;
    }
  }
  for (int t = 1; t < o.max_tokens; ++t) {
    work.clear();
    for (size_t i = 0; i < prompts.size(); ++i) {
      work.push_back({first_id + i, static_cast<int64_t>(prompts[i].size()) + t - 1, std::span<const int32_t>(&last[i], 1), LogitsMode::kLast});
    }
    logits.resize(work.size() * vocab);
    model.step(work, logits);
    for (size_t i = 0; i < prompts.size(); ++i) {
      last[i] = samplers[i].sample(std::span<const float>(logits.data() + i * vocab, vocab)).token;
    }
  }
  for (size_t i = 0; i < prompts.size(); ++i) model.free_sequence(first_id + i);
}

// The level's work on the engine alone, `concurrency` requests at a time (after a
// warm-up batch). Returns output tokens per second.
double engine_alone(runtime::EngineStepModel& model, const std::vector<std::vector<int32_t>>& prompts, int concurrency,
                    const BenchOptions& o) {
  const size_t c = static_cast<size_t>(concurrency);
  engine_batch(model, {prompts.begin(), prompts.begin() + std::min(c, prompts.size())}, o);
  const Clock::time_point start = Clock::now();
  for (size_t at = 0; at < prompts.size(); at += c) {
    engine_batch(model, {prompts.begin() + at, prompts.begin() + std::min(at + c, prompts.size())}, o);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return static_cast<double>(prompts.size()) * o.max_tokens / seconds;
}

// `engine` (with --model-dir): a second copy of the model for the engine-alone rows.
void run_levels(const std::string& host, int port, const BenchOptions& o, runtime::EngineStepModel* engine) {
  std::printf("%-6s %-5s %-8s %-10s %-22s %-22s %-22s%s\n", "conc", "reqs", "req/s", "out tok/s", "TTFT p50/p90/p99 ms",
              "TPOT p50/p90/p99 ms", "E2E p50/p90/p99 ms", engine ? "  engine alone out tok/s" : "");
  std::mt19937 rng(1);
  for (int concurrency : o.concurrency) {
    const int total = o.requests_per_level > 0 ? o.requests_per_level : std::max(16, 4 * concurrency);
    const std::vector<std::vector<int32_t>> prompts = random_prompts(rng, total, o.prompt_tokens);
    std::vector<std::string> bodies;
    for (const auto& prompt : prompts) {
      nlohmann::json body = {{"prompt", prompt}, {"max_tokens", o.max_tokens}, {"ignore_eos", true}, {"stream", true},
                             {"stream_options", {{"include_usage", true}}}};
      if (!o.model.empty()) body["model"] = o.model;
      bodies.push_back(body.dump());
    }
    std::vector<Sample> samples(total);
    std::atomic<int> next{0};
    const Clock::time_point start = Clock::now();
    std::vector<std::thread> workers;
    for (int w = 0; w < concurrency; ++w) {
      workers.emplace_back([&] {
        for (int i; (i = next++) < total;) {
          // Spread evenly: request i aborts when the running count of aborts steps up at i.
          const bool abort = static_cast<int>((i + 1) * o.abort_fraction) > static_cast<int>(i * o.abort_fraction);
          samples[i] = stream_one(host, port, bodies[i], abort);
        }
      });
    }
    for (auto& t : workers) t.join();
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    std::vector<double> ttft, tpot, e2e;
    int64_t tokens = 0;
    int failed = 0, aborted = 0;
    for (const auto& s : samples) {
      if (s.aborted) {
        ++aborted;
        continue;
      }
      if (!s.ok) {
        ++failed;
        continue;
      }
      ttft.push_back(s.ttft * 1e3);
      tpot.push_back(s.tpot * 1e3);
      e2e.push_back(s.e2e * 1e3);
      tokens += s.output_tokens;
    }
    auto triple = [](const std::vector<double>& v) {
      return fmt::format("{:.1f}/{:.1f}/{:.1f}", percentile(v, 50), percentile(v, 90), percentile(v, 99));
    };
    std::string alone;
    if (engine) {
      alone = fmt::format("  {:.0f}", engine_alone(*engine, prompts, concurrency, o));
    }
    std::printf("%-6d %-5d %-8.1f %-10.0f %-22s %-22s %-22s%s%s%s\n", concurrency, total,
                static_cast<double>(total - failed - aborted) / wall, static_cast<double>(tokens) / wall, triple(ttft).c_str(),
                triple(tpot).c_str(), triple(e2e).c_str(), alone.c_str(),
                (aborted ? fmt::format("  ({} aborted on purpose)", aborted) : std::string()).c_str(),
                failed ? fmt::format("  ({} FAILED)", failed).c_str() : "");
    std::fflush(stdout);
  }
}

// What the in-process server serves: a checkpoint with its tokenizer, or the fake model.
struct BenchTarget {
  std::unique_ptr<server::ServingText> text;
  std::unique_ptr<runtime::StepModel> model;
  std::unique_ptr<runtime::EngineStepModel> engine_alone;  // a separate copy, with --model-dir
  std::string description;
};

BenchTarget make_target(const BenchOptions& o, int64_t max_context) {
  BenchTarget t;
  if (!o.model_dir.empty()) {
    t.text = std::make_unique<server::DeepSeekText>((std::filesystem::path(o.model_dir) / "tokenizer.json").string());
    runtime::EngineModelOptions options;
    options.max_context = max_context;
    options.show_progress = false;
    t.engine_alone = runtime::EngineStepModel::open(o.model_dir, options);
    options.speculative = runtime::parse_speculative_config(o.speculative_config);
    t.model = runtime::EngineStepModel::open(o.model_dir, options);
    t.description = fmt::format("in-process server, model {}, {} CPU threads{}", o.model_dir, std::thread::hardware_concurrency(),
                                o.speculative_config.empty() ? "" : ", --speculative-config " + o.speculative_config);
    return t;
  }
  FP4SERVE_CHECK(o.speculative_config.empty(), "bench serve: --speculative-config needs --model-dir (a checkpoint with a draft)");
  t.text = std::make_unique<server::ByteLevelText>();
  runtime::FakeModelOptions fake;
  fake.vocab_size = t.text->vocab_size();
  fake.max_context = max_context;
  fake.eos_token = t.text->eos_token();
  fake.free_text_tokens = server::ByteLevelText::word_tokens();
  fake.step_delay = std::chrono::microseconds(o.fake_step_delay_us);
  t.model = std::make_unique<runtime::FakeStepModel>(fake);
  t.description = fmt::format("in-process server, fake model (step delay {} us), byte-level tokenizer", o.fake_step_delay_us);
  return t;
}

int run_bench(const BenchOptions& o) {
  std::printf("%s\nfp4serve bench serve: %d prompt tokens, %d output tokens per request, streamed completions\n",
              version_string().c_str(), o.prompt_tokens, o.max_tokens);
  FP4SERVE_CHECK(o.url.empty() || o.model_dir.empty(), "bench serve: give --url or --model-dir, not both");
  if (!o.url.empty()) {
    std::string rest = o.url.substr(o.url.find("://") == std::string::npos ? 0 : o.url.find("://") + 3);
    size_t colon = rest.rfind(':');
    FP4SERVE_CHECK(colon != std::string::npos, "--url {}: expected http://HOST:PORT", o.url);
    std::printf("target: %s\n", o.url.c_str());
    run_levels(rest.substr(0, colon), std::stoi(rest.substr(colon + 1)), o, nullptr);
    return 0;
  }
  const int64_t max_context = std::max<int64_t>(1024, o.prompt_tokens + o.max_tokens);
  BenchTarget target = make_target(o, max_context);
  runtime::SchedulerMetrics metrics;
  int max_concurrency = *std::max_element(o.concurrency.begin(), o.concurrency.end());
  runtime::Scheduler scheduler(*target.model,
                               {.max_num_seqs = max_concurrency, .max_waiting = 256, .max_batched_tokens = o.max_batched_tokens},
                               metrics);
  server::CompletionService service(*target.text, scheduler, metrics, {"bench", max_context, std::chrono::minutes(10)});
  server::HttpServerConfig http;
  http.host = "127.0.0.1";
  http.port = 0;
  server::HttpServer httpd(service, scheduler, metrics, http);
  int port = httpd.bind();
  std::thread serving([&] { httpd.serve(); });
  std::printf("target: %s; --max-num-seqs %d, --max-num-batched-tokens %lld\n", target.description.c_str(),
              max_concurrency, static_cast<long long>(o.max_batched_tokens));
  run_levels("127.0.0.1", port, o, target.engine_alone.get());
  httpd.drain_and_stop(std::chrono::seconds(5));
  serving.join();
  return 0;
}

const RegisterBenchmark bench{Command{
    "serve", "Load test of the OpenAI server: req/s, TTFT, TPOT, E2E percentiles at several concurrencies",
    [](CLI::App& sub) -> std::function<int()> {
      auto o = std::make_shared<BenchOptions>();
      sub.add_option("--url", o->url, "Server to load (http://HOST:PORT); default: an in-process server");
      sub.add_option("--model-dir", o->model_dir,
                     "Serve this checkpoint in-process and run the same work on the engine alone "
                     "(default: the fake model)");
      sub.add_option("--model", o->model, "Model name to send");
      sub.add_option("--concurrency", o->concurrency, "Concurrency levels")->delimiter(',')->capture_default_str();
      sub.add_option("--requests", o->requests_per_level, "Requests per level (default: 4 x concurrency, >= 16)");
      sub.add_option("--prompt-tokens", o->prompt_tokens, "Prompt length in tokens")->capture_default_str()->check(CLI::Range(1, 1 << 20));
      sub.add_option("--max-tokens", o->max_tokens, "Output tokens per request")->capture_default_str()->check(CLI::Range(1, 1 << 20));
      sub.add_option("--max-num-batched-tokens", o->max_batched_tokens, "Tokens per scheduler step (in-process)")
          ->capture_default_str()
          ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
      sub.add_option("--speculative-config", o->speculative_config,
                     "With --model-dir: speculative decoding for the served model, as serve takes it");
      sub.add_option("--fake-model-step-delay-us", o->fake_step_delay_us, "Simulated model time per step (fake model)")
          ->capture_default_str();
      sub.add_option("--abort-fraction", o->abort_fraction,
                     "Fraction of requests whose client hangs up after the first token (not counted as failures)")
          ->capture_default_str()
          ->check(CLI::Range(0.0, 1.0));
      return [o] { return run_bench(*o); };
    }}};

}  // namespace
}  // namespace fp4serve::cli
