#include "server/prometheus_metrics.h"

#include <fmt/format.h>

namespace fp4serve::server {
namespace {

// Label values escape backslash, quote and newline (exposition format rules).
std::string escape_label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

// Shortest round-trip form, with Prometheus' spelling of infinity.
std::string number(double v) { return fmt::format("{}", v); }

class Writer {
 public:
  explicit Writer(const std::string& model) : labels_(fmt::format("model_name=\"{}\"", escape_label(model))) {}

  void header(const std::string& name, const char* type, const char* help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void sample(const std::string& name, double value, const std::string& extra_labels = {}) {
    out_ += fmt::format("{}{{{}{}}} {}\n", name, labels_, extra_labels.empty() ? "" : "," + extra_labels, number(value));
  }
  void gauge(const std::string& name, const char* help, double value) {
    header(name, "gauge", help);
    sample(name, value);
  }
  void counter(const std::string& name, const char* help, double value) {
    header(name, "counter", help);
    sample(name, value);
  }
  void histogram(const std::string& name, const char* help, const runtime::Histogram& h) {
    runtime::Histogram::Snapshot s = h.snapshot();
    header(name, "histogram", help);
    for (size_t i = 0; i < s.upper_bounds.size(); ++i) {
      sample(name + "_bucket", static_cast<double>(s.cumulative_counts[i]), fmt::format("le=\"{}\"", number(s.upper_bounds[i])));
    }
    sample(name + "_bucket", static_cast<double>(s.count), "le=\"+Inf\"");
    sample(name + "_sum", s.sum);
    sample(name + "_count", static_cast<double>(s.count));
  }
  std::string take() { return std::move(out_); }

 private:
  std::string labels_;
  std::string out_;
};

}  // namespace

std::string render_prometheus(const runtime::SchedulerMetrics& m, const runtime::Scheduler::Load& load,
                              const std::string& model_name) {
  Writer w(model_name);
  w.gauge("vllm:num_requests_running", "Sequences in the running batch.", load.running);
  w.gauge("vllm:num_requests_waiting", "Sequences queued in front of the batch.", load.waiting);
  w.gauge("fp4serve:sequence_state_bytes", "Bytes held by live sequence states (KV caches).",
          static_cast<double>(load.state_bytes));

  runtime::SchedulerMetrics::Counters c = m.counters();
  w.counter("vllm:prompt_tokens_total", "Prompt tokens prefilled.", static_cast<double>(c.prompt_tokens));
  w.counter("vllm:generation_tokens_total", "Tokens generated.", static_cast<double>(c.generation_tokens));
  w.counter("vllm:num_preemptions_total", "Preemptions (fp4serve never preempts).", 0);
  w.counter("fp4serve:request_rejected_total", "Requests refused because the queue was full (HTTP 429).",
            static_cast<double>(c.rejected_requests));
  w.header("vllm:request_success_total", "counter", "Finished choices by finish reason.");
  for (const char* reason : {"stop", "length", "abort"}) {
    auto it = c.finished_by_reason.find(reason);
    w.sample("vllm:request_success_total", it == c.finished_by_reason.end() ? 0.0 : static_cast<double>(it->second),
             fmt::format("finished_reason=\"{}\"", reason));
  }
  for (const auto& [reason, count] : c.finished_by_reason) {
    if (reason != "stop" && reason != "length" && reason != "abort") {
      w.sample("vllm:request_success_total", static_cast<double>(count),
               fmt::format("finished_reason=\"{}\"", escape_label(reason)));
    }
  }

  // Speculative decoding (vLLM's spec_decode counters; zero without --speculative-config).
  w.counter("vllm:spec_decode_num_drafts_total", "Draft proposals verified.", static_cast<double>(c.spec_drafts));
  w.counter("vllm:spec_decode_num_draft_tokens_total", "Drafted tokens verified.", static_cast<double>(c.spec_draft_tokens));
  w.counter("vllm:spec_decode_num_accepted_tokens_total", "Drafted tokens accepted.",
            static_cast<double>(c.spec_accepted_tokens));
  w.header("vllm:spec_decode_num_accepted_tokens_per_pos_total", "counter", "Drafted tokens accepted, by draft position.");
  for (size_t k = 0; k < c.spec_accepted_per_position.size(); ++k)
    w.sample("vllm:spec_decode_num_accepted_tokens_per_pos_total", static_cast<double>(c.spec_accepted_per_position[k]),
             fmt::format("position=\"{}\"", k));

  w.histogram("vllm:time_to_first_token_seconds", "Time from arrival to the first token.", m.time_to_first_token);
  w.histogram("vllm:inter_token_latency_seconds", "Time between consecutive tokens of a sequence.", m.inter_token_latency);
  w.histogram("vllm:e2e_request_latency_seconds", "Time from arrival to the last token.", m.e2e_request_latency);
  w.histogram("vllm:request_queue_time_seconds", "Time spent waiting for a batch slot.", m.request_queue_time);
  w.histogram("vllm:request_prefill_time_seconds", "Time from admission to the first token.", m.request_prefill_time);
  w.histogram("vllm:request_decode_time_seconds", "Time from the first to the last token.", m.request_decode_time);
  w.histogram("vllm:request_prompt_tokens", "Prompt length per sequence.", m.request_prompt_tokens);
  w.histogram("vllm:request_generation_tokens", "Generated tokens per sequence.", m.request_generation_tokens);
  w.histogram("vllm:iteration_tokens_total", "Tokens per scheduler step.", m.iteration_tokens);
  return w.take();
}

}  // namespace fp4serve::server
