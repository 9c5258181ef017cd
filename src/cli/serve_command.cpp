// `fp4serve serve MODEL_DIR`: the OpenAI-compatible server, with vLLM's flag
// names. SIGTERM or SIGINT drains: new requests get 503, running ones finish.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "base/error.h"
#include "cli/command.h"
#include "cli/engine_flags.h"
#include "runtime/engine_fake_model.h"
#include "runtime/engine_step_model.h"
#include "runtime/scheduler.h"
#include "runtime/speculative_config.h"
#include "server/byte_level_text.h"
#include "server/completion_service.h"
#include "server/deepseek_text.h"
#include "server/generation_defaults.h"
#include "server/http_server.h"

namespace fp4serve::cli {
namespace {

struct ServeOptions {
  std::string model_dir;
  std::string host = "0.0.0.0";
  int port = 8000;
  std::string served_model_name;
  int64_t max_model_len = 0;  // 0: the model's, capped (runtime::kDefaultMaxContext)
  EngineFlags engine;
  int max_num_seqs = 64;
  int64_t max_num_batched_tokens = 512;
  std::string speculative_config;  // vLLM's JSON; "" = none
  int max_waiting_requests = 256;
  std::string api_key;
  std::string tokenizer;
  std::string generation_config = "auto";
  double request_timeout_s = 600;
  double drain_timeout_s = 30;
  int http_threads = 0;
  server::HttpLimits limits;
  double header_timeout_s = 10;
  double body_timeout_s = 60;
  // Test-only: the deterministic fake model instead of a checkpoint.
  bool fake_model = false;
  int fake_model_step_delay_us = 0;
};

// Waits for SIGTERM/SIGINT (blocked in every thread, so only this one sees them).
int wait_for_signal(const sigset_t& signals, const std::atomic<bool>& server_ended) {
  timespec tick{0, 200 * 1000 * 1000};
  while (!server_ended.load()) {
    int sig = sigtimedwait(&signals, nullptr, &tick);
    if (sig > 0) return sig;
  }
  return 0;
}

// What `serve` puts behind the API: a text layer and a model.
struct ServedModel {
  std::unique_ptr<server::ServingText> text;
  std::unique_ptr<runtime::StepModel> model;
};

std::string tokenizer_path_for(const ServeOptions& o) {
  if (!o.tokenizer.empty()) return o.tokenizer;
  if (o.model_dir.empty()) return {};
  return (std::filesystem::path(o.model_dir) / "tokenizer.json").string();
}

ServedModel load_checkpoint_model(const ServeOptions& o) {
  FP4SERVE_CHECK(!o.model_dir.empty(), "serve: MODEL_DIR is required");
  FP4SERVE_CHECK(std::filesystem::is_directory(o.model_dir), "serve: model directory '{}' does not exist", o.model_dir);
  const std::string tokenizer_path = tokenizer_path_for(o);
  FP4SERVE_CHECK(std::filesystem::exists(tokenizer_path),
                 "serve: tokenizer '{}' not found (give --tokenizer, or put tokenizer.json in the model directory)",
                 tokenizer_path);
  std::printf("fp4serve: loading '%s'\n", o.model_dir.c_str());
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  ServedModel served;
  runtime::EngineModelOptions options;
  options.speculative = runtime::parse_speculative_config(o.speculative_config);  // before anything loads
  runtime::check_speculation_alone(options.speculative, o.engine.tensor_parallel_size, o.engine.enable_expert_parallel);
  served.text = std::make_unique<server::DeepSeekText>(tokenizer_path);
  options.device = o.engine.device_choice();
  options.act_quant = o.engine.act_quant_mode();
  options.memory_utilization = o.engine.gpu_memory_utilization;
  options.tensor_parallel_size = o.engine.tensor_parallel_size;
  options.expert_parallel = o.engine.enable_expert_parallel;
  options.max_context = o.max_model_len;
  options.max_sequences = o.max_num_seqs;
  options.max_step_tokens = o.max_num_batched_tokens;
  auto model = runtime::EngineStepModel::open(o.model_dir, options);
  const ModelConfig& config = model->engine().config();
  FP4SERVE_CHECK(served.text->vocab_size() <= model->vocab_size(),
                 "serve: tokenizer '{}' has {} tokens, more than the model's vocab_size {}", tokenizer_path,
                 served.text->vocab_size(), model->vocab_size());
  FP4SERVE_CHECK(served.text->eos_token() == config.eos_token_id,
                 "serve: tokenizer '{}' ends sequences with token {}, the model's config.json with {}", tokenizer_path,
                 served.text->eos_token(), config.eos_token_id);
  std::printf("fp4serve: loaded in %.2f s: %lld layers, vocab %d, context %lld tokens, %.1f MiB of state per sequence\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
              static_cast<long long>(config.num_layers), model->vocab_size(),
              static_cast<long long>(model->max_context()),
              static_cast<double>(model->engine().sequence_state_bytes()) / (1 << 20));
  std::fflush(stdout);
  served.model = std::move(model);
  return served;
}

// The deterministic fake model (tests), with DeepSeek's text layer when a
// tokenizer is at hand, else the byte-level stand-in.
ServedModel make_fake_model(const ServeOptions& o) {
  const std::string tokenizer_path = tokenizer_path_for(o);
  ServedModel served;
  std::vector<int32_t> free_words;
  if (!o.tokenizer.empty() || (!tokenizer_path.empty() && std::filesystem::exists(tokenizer_path))) {
    auto deepseek = std::make_unique<server::DeepSeekText>(tokenizer_path);
    free_words = deepseek->plain_word_tokens();
    served.text = std::move(deepseek);
  } else {
    served.text = std::make_unique<server::ByteLevelText>();
    free_words = server::ByteLevelText::word_tokens();
  }
  const server::ServingText* text = served.text.get();
  runtime::FakeModelOptions fake;
  fake.vocab_size = text->vocab_size();
  fake.max_context = o.max_model_len > 0 ? o.max_model_len : 4096;
  fake.eos_token = text->eos_token();
  fake.free_text_tokens = std::move(free_words);
  fake.step_delay = std::chrono::microseconds(o.fake_model_step_delay_us);
  fake.decode = [text](std::span<const int32_t> ids) { return text->decode(ids, false); };
  fake.encode = [text](const std::string& s) { return text->encode(s, false); };
  served.model = std::make_unique<runtime::FakeStepModel>(fake);
  return served;
}

// vLLM's --generation-config: "auto" reads MODEL_DIR/generation_config.json,
// "vllm" keeps OpenAI's defaults, anything else names a folder holding one.
// The chat thinking default always follows MODEL_DIR (it belongs to the chat template).
server::SamplingDefaults sampling_defaults_for(const ServeOptions& o) {
  server::SamplingDefaults defaults;
  if (!o.model_dir.empty()) {
    defaults.thinking = server::read_default_thinking(o.model_dir);
    if (!defaults.thinking) {
      std::printf("fp4serve: chat requests that choose no thinking mode get chat mode (%s sets "
                  "default_chat_template_kwargs)\n", o.model_dir.c_str());
    }
  }
  if (o.generation_config == "vllm") return defaults;
  std::string dir = o.generation_config == "auto" ? o.model_dir : o.generation_config;
  if (o.generation_config != "auto") {
    FP4SERVE_CHECK(std::filesystem::is_regular_file(std::filesystem::path(dir) / "generation_config.json"),
                   "--generation-config: '{}' holds no generation_config.json", dir);
  }
  if (dir.empty()) return defaults;
  const bool thinking = defaults.thinking;
  defaults = server::read_generation_config(dir);
  defaults.thinking = thinking;
  std::string changed = server::describe_sampling_defaults(defaults);
  if (!changed.empty()) {
    std::printf("fp4serve: default sampling from %s/generation_config.json (requests may override): %s\n",
                dir.c_str(), changed.c_str());
  }
  return defaults;
}

int run_serve(const ServeOptions& o) {
  // Loaded before any thread starts, so a bad checkpoint ends the process with its error.
  ServedModel served = o.fake_model ? make_fake_model(o) : load_checkpoint_model(o);
  const server::SamplingDefaults sampling_defaults = sampling_defaults_for(o);
  server::ServingText& text = *served.text;
  runtime::StepModel& model = *served.model;

  // Block the shutdown signals before any thread starts, so all inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a vanished client must not kill the server

  runtime::SchedulerMetrics metrics;
  runtime::Scheduler scheduler(model,
                               {.max_num_seqs = o.max_num_seqs,
                                .max_waiting = o.max_waiting_requests,
                                .max_batched_tokens = o.max_num_batched_tokens},
                               metrics);
  server::ServiceConfig service_config;
  service_config.served_model_name = !o.served_model_name.empty() ? o.served_model_name
                                     : !o.model_dir.empty()        ? o.model_dir
                                                                   : std::string("fake-model");
  service_config.max_model_len = model.max_context();
  service_config.request_timeout = std::chrono::milliseconds(static_cast<int64_t>(o.request_timeout_s * 1000));
  service_config.sampling_defaults = sampling_defaults;
  server::CompletionService service(text, scheduler, metrics, service_config);

  server::HttpServerConfig http;
  http.host = o.host;
  http.port = o.port;
  http.api_key = o.api_key;
  http.threads = o.http_threads;
  http.limits = o.limits;
  http.limits.header_timeout = std::chrono::milliseconds(static_cast<int64_t>(o.header_timeout_s * 1000));
  http.limits.body_timeout = std::chrono::milliseconds(static_cast<int64_t>(o.body_timeout_s * 1000));
  server::HttpServer server(service, scheduler, metrics, http);
  int port = server.bind();
  std::printf("fp4serve: serving '%s' on http://%s:%d (max_model_len %lld, max_num_seqs %d)\n",
              service_config.served_model_name.c_str(), o.host.c_str(), port,
              static_cast<long long>(service_config.max_model_len), o.max_num_seqs);
  std::fflush(stdout);

  std::atomic<bool> server_ended{false};
  std::thread http_thread([&] {
    server.serve();
    server_ended.store(true);
  });
  int sig = wait_for_signal(signals, server_ended);
  if (sig) {
    std::printf("fp4serve: %s received, draining (up to %.0f s)\n", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                o.drain_timeout_s);
    std::fflush(stdout);
    server.drain_and_stop(std::chrono::milliseconds(static_cast<int64_t>(o.drain_timeout_s * 1000)));
  }
  http_thread.join();
  std::printf("fp4serve: stopped\n");
  return 0;
}

const RegisterCommand serve{Command{
    "serve", "OpenAI-compatible HTTP server (vLLM-style flags)", [](CLI::App& sub) -> std::function<int()> {
      auto o = std::make_shared<ServeOptions>();
      sub.add_option("model_dir", o->model_dir, "Model directory (config.json, safetensors, tokenizer.json)");
      sub.add_option("--host", o->host, "Address to listen on")->capture_default_str();
      sub.add_option("--port", o->port, "Port to listen on (0: any free port)")->capture_default_str();
      sub.add_option("--served-model-name", o->served_model_name, "Model name in the API (default: MODEL_DIR)");
      sub.add_option("--max-model-len", o->max_model_len,
                     "Context length: prompt + completion tokens; each sequence reserves its state for it "
                     "(default: the model's max_position_embeddings, at most 4096)")
          ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
      o->engine.add_to(sub);
      sub.add_option("--max-num-seqs", o->max_num_seqs, "Sequences in the running batch")
          ->capture_default_str()
          ->check(CLI::Range(1, 65536));
      sub.add_option("--max-num-batched-tokens", o->max_num_batched_tokens,
                     "Tokens per scheduler step (decodes plus prompt chunks)")
          ->capture_default_str()
          ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
      sub.add_option("--speculative-config", o->speculative_config,
                     "Speculative decoding, as vLLM: '{\"method\": \"dspark\"|\"mtp\", \"num_speculative_tokens\": K}' "
                     "(optional \"confidence_threshold\" for DSpark)");
      sub.add_option("--max-waiting-requests", o->max_waiting_requests,
                     "Bound of the request queue; beyond it requests get 429 with Retry-After")
          ->capture_default_str()
          ->check(CLI::Range(0, 1 << 20));
      sub.add_option("--api-key", o->api_key, "Require 'Authorization: Bearer KEY' on /v1 and token endpoints");
      sub.add_option("--tokenizer", o->tokenizer, "tokenizer.json (default: MODEL_DIR/tokenizer.json)");
      sub.add_option("--generation-config", o->generation_config,
                     "Default sampling for fields a request omits: auto (MODEL_DIR/generation_config.json), "
                     "vllm (OpenAI's defaults), or a folder holding a generation_config.json")
          ->capture_default_str();
      sub.add_option("--request-timeout", o->request_timeout_s, "Seconds a request may take (then 408)")
          ->capture_default_str()
          ->check(CLI::PositiveNumber);
      sub.add_option("--drain-timeout", o->drain_timeout_s, "Seconds SIGTERM waits for running requests")
          ->capture_default_str()
          ->check(CLI::NonNegativeNumber);
      sub.add_option("--http-threads", o->http_threads,
                     "Handler threads: a plain (non-streaming) completion holds one while it generates; "
                     "streams hold none (default: seqs + queue + 16)")
          ->check(CLI::Range(0, 1 << 16));
      sub.add_option("--max-body-bytes", o->limits.max_body_bytes,
                     "Largest request body, chunked or not; larger ones get 413")
          ->capture_default_str()
          ->check(CLI::Range(size_t{1}, size_t{1} << 34));
      sub.add_option("--max-header-bytes", o->limits.max_header_bytes,
                     "Largest request header section (fields, without the request line); larger gets 431")
          ->capture_default_str()
          ->check(CLI::Range(size_t{1024}, server::kMaxHeaderSectionBytes));
      sub.add_option("--max-url-bytes", o->limits.max_url_bytes,
                     "Longest request target; longer gets 414 (with --max-header-bytes at most 65533 in all)")
          ->capture_default_str()
          ->check(CLI::Range(size_t{256}, server::kMaxHeaderSectionBytes));
      sub.add_option("--header-timeout", o->header_timeout_s,
                     "Seconds a connection may take from its first wait (or its previous response) to the end of "
                     "a request's headers; then it is closed")
          ->capture_default_str()
          ->check(CLI::PositiveNumber);
      sub.add_option("--body-timeout", o->body_timeout_s,
                     "Seconds a request may take to send its whole body; then the connection is closed")
          ->capture_default_str()
          ->check(CLI::PositiveNumber);
      sub.add_option("--max-connections", o->limits.max_connections,
                     "Open connections; past it the longest-idle one is closed, or when none is idle the new one "
                     "gets 503")
          ->capture_default_str()
          ->check(CLI::Range(1, 1 << 20));
      // Hidden, test-only: the deterministic fake model of src/runtime/engine_fake_model.h.
      sub.add_flag("--fake-model", o->fake_model, "")->group("");
      sub.add_option("--fake-model-step-delay-us", o->fake_model_step_delay_us, "")->group("");
      return [o] { return run_serve(*o); };
    }}};

}  // namespace
}  // namespace fp4serve::cli
