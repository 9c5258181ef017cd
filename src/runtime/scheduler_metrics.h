// Counters and latency histograms of the serving runtime, with vLLM's meanings
// (the server renders them under vLLM's Prometheus names). Thread-safe: the
// scheduler thread records, HTTP workers record finishes and read snapshots.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace fp4serve::runtime {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);

  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<uint64_t> cumulative_counts;  // one per bound; the +Inf bucket is `count`
    uint64_t count = 0;
    double sum = 0;
  };
  Snapshot snapshot() const;

 private:
  mutable std::mutex mutex_;
  std::vector<double> upper_bounds_;
  std::vector<uint64_t> bucket_counts_;  // per bucket, not cumulative
  uint64_t count_ = 0;
  double sum_ = 0;
};

struct SchedulerMetrics {
  SchedulerMetrics();

  // vLLM's bucket layouts (seconds, tokens).
  Histogram time_to_first_token;
  Histogram inter_token_latency;
  Histogram e2e_request_latency;
  Histogram request_queue_time;
  Histogram request_prefill_time;
  Histogram request_decode_time;
  Histogram request_prompt_tokens;
  Histogram request_generation_tokens;
  Histogram iteration_tokens;

  void add_prompt_tokens(uint64_t n);
  void add_generation_tokens(uint64_t n);
  void count_finished(const std::string& finished_reason);
  void count_rejected();
  // Speculative decoding, as vLLM counts it: one draft of `tokens` tokens proposed for a
  // sequence; `accepted` of a verified draft's tokens accepted (a prefix).
  void count_draft(int64_t tokens);
  void count_accepted(int64_t accepted);

  struct Counters {
    uint64_t prompt_tokens = 0;
    uint64_t generation_tokens = 0;
    uint64_t rejected_requests = 0;
    std::map<std::string, uint64_t> finished_by_reason;
    uint64_t spec_drafts = 0;
    uint64_t spec_draft_tokens = 0;
    uint64_t spec_accepted_tokens = 0;
    std::vector<uint64_t> spec_accepted_per_position;  // [k]: verified drafts whose position k was accepted
  };
  Counters counters() const;

 private:
  mutable std::mutex mutex_;
  Counters counters_;
};

}  // namespace fp4serve::runtime
