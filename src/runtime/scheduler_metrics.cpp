#include "runtime/scheduler_metrics.h"

#include <algorithm>

#include "base/error.h"

namespace fp4serve::runtime {
namespace {

// Bucket bounds as vLLM publishes them (vllm/v1/metrics/loggers.py), so
// dashboards built for vLLM read ours unchanged.
std::vector<double> ttft_buckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
          2.5,   5.0,   7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
}
std::vector<double> inter_token_buckets() {
  return {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0};
}
std::vector<double> request_latency_buckets() {
  return {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
          120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
}
std::vector<double> token_count_buckets() {
  // 1-2-5 series up to a million tokens (vLLM builds the same up to max_model_len).
  std::vector<double> b;
  for (double scale = 1; scale <= 1e6; scale *= 10) {
    for (double m : {1.0, 2.0, 5.0}) b.push_back(m * scale);
  }
  return b;
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)), bucket_counts_(upper_bounds_.size() + 1, 0) {
  FP4SERVE_CHECK(std::is_sorted(upper_bounds_.begin(), upper_bounds_.end()), "histogram bounds must be ascending");
}

void Histogram::observe(double value) {
  size_t bucket = std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) - upper_bounds_.begin();
  std::lock_guard lock(mutex_);
  ++bucket_counts_[bucket];
  ++count_;
  sum_ += value;
}

Histogram::Snapshot Histogram::snapshot() const {
  std::lock_guard lock(mutex_);
  Snapshot s;
  s.upper_bounds = upper_bounds_;
  uint64_t running = 0;
  for (size_t i = 0; i < upper_bounds_.size(); ++i) {
    running += bucket_counts_[i];
    s.cumulative_counts.push_back(running);
  }
  s.count = count_;
  s.sum = sum_;
  return s;
}

SchedulerMetrics::SchedulerMetrics()
    : time_to_first_token(ttft_buckets()),
      inter_token_latency(inter_token_buckets()),
      e2e_request_latency(request_latency_buckets()),
      request_queue_time(request_latency_buckets()),
      request_prefill_time(request_latency_buckets()),
      request_decode_time(request_latency_buckets()),
      request_prompt_tokens(token_count_buckets()),
      request_generation_tokens(token_count_buckets()),
      iteration_tokens(token_count_buckets()) {}

void SchedulerMetrics::add_prompt_tokens(uint64_t n) {
  std::lock_guard lock(mutex_);
  counters_.prompt_tokens += n;
}

void SchedulerMetrics::add_generation_tokens(uint64_t n) {
  std::lock_guard lock(mutex_);
  counters_.generation_tokens += n;
}

void SchedulerMetrics::count_finished(const std::string& finished_reason) {
  std::lock_guard lock(mutex_);
  ++counters_.finished_by_reason[finished_reason];
}

void SchedulerMetrics::count_rejected() {
  std::lock_guard lock(mutex_);
  ++counters_.rejected_requests;
}

void SchedulerMetrics::count_draft(int64_t tokens) {
  std::lock_guard lock(mutex_);
  ++counters_.spec_drafts;
  counters_.spec_draft_tokens += static_cast<uint64_t>(tokens);
  // Every drafted position has a counter from its first draft on, as vLLM exports them.
  auto& per = counters_.spec_accepted_per_position;
  if (per.size() < static_cast<size_t>(tokens)) per.resize(static_cast<size_t>(tokens), 0);
}

void SchedulerMetrics::count_accepted(int64_t accepted) {
  std::lock_guard lock(mutex_);
  counters_.spec_accepted_tokens += static_cast<uint64_t>(accepted);
  auto& per = counters_.spec_accepted_per_position;
  if (per.size() < static_cast<size_t>(accepted)) per.resize(static_cast<size_t>(accepted), 0);
  for (int64_t k = 0; k < accepted; ++k) ++per[static_cast<size_t>(k)];
}

SchedulerMetrics::Counters SchedulerMetrics::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

}  // namespace fp4serve::runtime
