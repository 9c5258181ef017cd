// A Backend that forwards every call to another and meters what the benchmarks need
// (`bench decode`, `bench prefill`): the distinct weight bytes a window of steps reads
// (the memory floor: every projection called, the routed experts actually touched, the
// embedding rows), the multiply-adds of every projection (the compute floor), and with
// profiling on, the time of each op and of each projection class.
//
// Inside the MoE op the CPU backend runs its linears itself; this backend sees them
// through the activation observer (which experts the routing chose). A backend that
// cannot show them (CUDA) is counted as k distinct experts per row, at most all of them.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "backend/backend.h"

namespace fp4serve::cli {

// "layers.3.ffn.experts.17.w1" -> "ffn.experts.w1": one row of a profile per projection kind.
std::string projection_class(const std::string& weight_name);

class MeteredBackend final : public Backend, private ActivationObserver {
 public:
  explicit MeteredBackend(Backend& inner);

  // Starts a window: forgets the weights seen, the FLOPs and the profile.
  void reset();
  // With profiling on, each op synchronizes and its time is added to its row.
  void set_profiling(bool on) { profiling_ = on; }

  struct Window {
    uint64_t weight_bytes = 0;   // distinct weights read, plus embedding rows
    double linear_flops = 0;     // 2 x multiply-adds of every projection
    bool experts_observed = true;  // false: MoE experts estimated (backend without an observer)
    std::vector<const LinearWeight*> weights;  // the distinct weights, in first-use order
  };
  const Window& window() const { return window_; }

  struct ProfileRow {
    double seconds = 0;
    int64_t calls = 0;
    uint64_t bytes = 0;  // weight bytes the row's calls read (each weight once per call)
  };
  // Rows by name: ops ("op attention_sequences") and projection classes ("linear attn.wq_a",
  // "moe ffn.experts.w1+w3 ...").
  const std::map<std::string, ProfileRow>& profile() const { return profile_; }

  DeviceKind kind() const override { return inner_.kind(); }
  std::string description() const override { return inner_.description(); }
  MemoryInfo memory_info() const override { return inner_.memory_info(); }
  DeviceBuffer allocate(size_t bytes) override { return inner_.allocate(bytes); }
  uint64_t placement_bytes(const LinearWeight& w) const override { return inner_.placement_bytes(w); }
  uint64_t placement_bytes(const TensorView& t) const override { return inner_.placement_bytes(t); }
  void place(const LinearWeight& w) override { inner_.place(w); }
  const void* place(const TensorView& t) override { return inner_.place(t); }
  const float* place(std::span<const float> v) override { return inner_.place(v); }
  const int32_t* place(std::span<const int32_t> v) override { return inner_.place(v); }
  void set_placement_progress(PlacementProgress p) override { inner_.set_placement_progress(std::move(p)); }
  void copy_to_device(void* d, const void* s, size_t n) override { inner_.copy_to_device(d, s, n); }
  void copy_to_host(void* d, const void* s, size_t n) override { inner_.copy_to_host(d, s, n); }
  void copy_on_device(void* d, const void* s, size_t n) override { inner_.copy_on_device(d, s, n); }
  void fill(float* d, int64_t n, float v) override { inner_.fill(d, n, v); }
  void synchronize() override { inner_.synchronize(); }

  void embed(const EmbedParams& p) override;
  void hc_pre(const HcPreParams& p) override;
  void hc_post(const HcPostParams& p) override;
  void hc_head(const HcHeadParams& p) override;
  void rms_norm(const RmsNormParams& p) override;
  void add_to_streams(const AddToStreamsParams& p) override;
  void linear(std::span<const LinearJob> jobs) override;
  void attention_heads(const AttentionHeadsParams& p) override;
  void attention_sequences(const AttentionSequencesParams& p, const StepRows& rows) override;
  void moe(const MoeParams& p) override;
  void mean_streams(const MeanStreamsParams& p) override;
  void block_attention(const BlockAttentionParams& p, const StepRows& rows) override;
  void set_activation_observer(ActivationObserver* observer) override;

 private:
  using Clock = std::chrono::steady_clock;
  void observe(const LinearWeight& weight, const float* x, int64_t rows, int64_t x_stride) override;
  // Counts a weight's bytes once per window.
  void touch(const LinearWeight& w);
  Clock::time_point start_op();
  void end_op(const std::string& row, Clock::time_point t0, uint64_t bytes = 0);
  void close_moe_segment(Clock::time_point now);

  Backend& inner_;
  bool observer_installed_ = false;
  bool profiling_ = false;
  bool in_moe_ = false;
  Window window_;
  std::unordered_set<const LinearWeight*> seen_;
  std::map<std::string, ProfileRow> profile_;
  std::mutex mutex_;  // the observer may be called from any thread
  // The MoE op's current projection call (profiling): its row, start and bytes.
  std::string moe_segment_;
  Clock::time_point moe_segment_start_;
  uint64_t moe_segment_bytes_ = 0;
};

}  // namespace fp4serve::cli
