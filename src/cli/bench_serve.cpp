// `fp4serve bench serve`: load test of the OpenAI server. Streams completions
// at each concurrency level and reports requests/s, output tokens/s and
// latency percentiles (time to first token, time per output token, end to
// end). Without --url it starts an in-process server on the fake model, which
// measures the serving stack itself (HTTP, SSE, scheduler, sampling).
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <sstream>
#include <thread>

#include "base/error.h"
#include "base/version.h"
#include "cli/command.h"
#include "runtime/engine_fake_model.h"
#include "runtime/scheduler.h"
#include "server/byte_level_text.h"
#include "server/completion_service.h"
#include "server/http_server.h"

namespace fp4serve::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchOptions {
  std::string url;
  std::string model;
  std::vector<int> concurrency = {1, 8, 64};
  int requests_per_level = 0;  // 0: 4 x concurrency, at least 16
  int prompt_tokens = 128;
  int max_tokens = 64;
  int fake_step_delay_us = 0;
};

struct Sample {
  double ttft = 0, tpot = 0, e2e = 0;
  int64_t output_tokens = 0;
  bool ok = false;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// One streamed completion; TTFT is the first event carrying text.
Sample stream_one(const std::string& host, int port, const std::string& body) {
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

std::string random_prompt(std::mt19937& rng, int length) {
  std::string p;
  while (static_cast<int>(p.size()) < length) p += static_cast<char>('a' + rng() % 26);
  return p;
}

void run_levels(const std::string& host, int port, const BenchOptions& o) {
  std::printf("%-6s %-5s %-8s %-10s %-22s %-22s %-22s\n", "conc", "reqs", "req/s", "out tok/s", "TTFT p50/p90/p99 ms",
              "TPOT p50/p90/p99 ms", "E2E p50/p90/p99 ms");
  std::mt19937 rng(1);
  for (int concurrency : o.concurrency) {
    const int total = o.requests_per_level > 0 ? o.requests_per_level : std::max(16, 4 * concurrency);
    std::vector<std::string> bodies;
    for (int i = 0; i < total; ++i) {
      nlohmann::json body = {{"prompt", random_prompt(rng, o.prompt_tokens)}, {"max_tokens", o.max_tokens},
                             {"ignore_eos", true}, {"stream", true}, {"stream_options", {{"include_usage", true}}}};
      if (!o.model.empty()) body["model"] = o.model;
      bodies.push_back(body.dump());
    }
    std::vector<Sample> samples(total);
    std::atomic<int> next{0};
    const Clock::time_point start = Clock::now();
    std::vector<std::thread> workers;
    for (int w = 0; w < concurrency; ++w) {
      workers.emplace_back([&] {
        for (int i; (i = next++) < total;) samples[i] = stream_one(host, port, bodies[i]);
      });
    }
    for (auto& t : workers) t.join();
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    std::vector<double> ttft, tpot, e2e;
    int64_t tokens = 0;
    int failed = 0;
    for (const auto& s : samples) {
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
    std::printf("%-6d %-5d %-8.1f %-10.0f %-22s %-22s %-22s%s\n", concurrency, total,
                static_cast<double>(total - failed) / wall, static_cast<double>(tokens) / wall, triple(ttft).c_str(),
                triple(tpot).c_str(), triple(e2e).c_str(), failed ? fmt::format("  ({} FAILED)", failed).c_str() : "");
    std::fflush(stdout);
  }
}

int run_bench(const BenchOptions& o) {
  std::printf("%s\nfp4serve bench serve: %d prompt tokens, %d output tokens per request, streamed completions\n",
              version_string().c_str(), o.prompt_tokens, o.max_tokens);
  if (!o.url.empty()) {
    std::string rest = o.url.substr(o.url.find("://") == std::string::npos ? 0 : o.url.find("://") + 3);
    size_t colon = rest.rfind(':');
    FP4SERVE_CHECK(colon != std::string::npos, "--url {}: expected http://HOST:PORT", o.url);
    std::printf("target: %s\n", o.url.c_str());
    run_levels(rest.substr(0, colon), std::stoi(rest.substr(colon + 1)), o);
    return 0;
  }
  // In-process server on the fake model: the serving stack's own cost.
  server::ByteLevelText text;
  runtime::FakeModelOptions fake;
  fake.vocab_size = text.vocab_size();
  fake.max_context = 4096;
  fake.eos_token = text.eos_token();
  fake.free_text_tokens = server::ByteLevelText::word_tokens();
  fake.step_delay = std::chrono::microseconds(o.fake_step_delay_us);
  runtime::FakeStepModel model(fake);
  runtime::SchedulerMetrics metrics;
  int max_concurrency = *std::max_element(o.concurrency.begin(), o.concurrency.end());
  runtime::Scheduler scheduler(model, {.max_num_seqs = max_concurrency, .max_waiting = 256, .max_batched_tokens = 2048},
                               metrics);
  server::CompletionService service(text, scheduler, metrics, {"fake-model", 4096, std::chrono::minutes(10)});
  server::HttpServerConfig http;
  http.host = "127.0.0.1";
  http.port = 0;
  server::HttpServer httpd(service, scheduler, metrics, http);
  int port = httpd.bind();
  std::thread serving([&] { httpd.serve(); });
  std::printf("target: in-process server, fake model (step delay %d us), byte-level tokenizer\n", o.fake_step_delay_us);
  run_levels("127.0.0.1", port, o);
  httpd.drain_and_stop(std::chrono::seconds(5));
  serving.join();
  return 0;
}

const RegisterBenchmark bench{Command{
    "serve", "Load test of the OpenAI server: req/s, TTFT, TPOT, E2E percentiles at several concurrencies",
    [](CLI::App& sub) -> std::function<int()> {
      auto o = std::make_shared<BenchOptions>();
      sub.add_option("--url", o->url, "Server to load (http://HOST:PORT); default: an in-process fake-model server");
      sub.add_option("--model", o->model, "Model name to send");
      sub.add_option("--concurrency", o->concurrency, "Concurrency levels")->delimiter(',')->capture_default_str();
      sub.add_option("--requests", o->requests_per_level, "Requests per level (default: 4 x concurrency, >= 16)");
      sub.add_option("--prompt-tokens", o->prompt_tokens, "Prompt length (letters; one token each on the fake model)")
          ->capture_default_str();
      sub.add_option("--max-tokens", o->max_tokens, "Output tokens per request")->capture_default_str();
      sub.add_option("--fake-model-step-delay-us", o->fake_step_delay_us, "Simulated model time per step (in-process)")
          ->capture_default_str();
      return [o] { return run_bench(*o); };
    }}};

}  // namespace
}  // namespace fp4serve::cli
