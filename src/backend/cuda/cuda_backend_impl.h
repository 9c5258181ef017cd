// The CUDA backend's class (backend/backend.h on one GPU, one stream). Its ops are split by
// concern: cuda_backend.cpp (device, memory, placement, the small ops), cuda_linear_op.cpp,
// cuda_attention_op.cpp and cuda_moe_op.cpp. Every op only enqueues work: the host never
// waits inside a step (sizes come from positions), except copy_to_host and synchronize.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/exact_weight.h"
#include "backend/cuda/gpu_context.h"
#include "backend/cuda/linear_cuda.h"
#include "backend/cuda/ops/ops.h"

namespace fp4serve::cuda {

// Work buffers of the ops, by purpose; grown on demand (a growth waits for the stream
// first, so no queued kernel still reads the old buffer).
enum class Work : int {
  kQuantized, kQuantizedShared, kMixes, kGathered, kRopeCos, kRopeSin,
  kStepRows, kStepRuns, kEmittedMain, kEmittedIndex, kIndexScores, kSelected, kAttentionScores,
  kLogits, kRouteExperts, kRouteWeights, kHidden1, kHidden3, kMid, kDown,
  kSharedHidden1, kSharedHidden3, kSharedMid, kSharedDown, kGemmIn, kGemmOut,
  kCount
};

// A placed linear: on the Hopper GEMMs' layout when its shape fits them (K % 128 == 0,
// N % 16 == 0; BF16, FP8 block-128, MXFP4, NVFP4), which the exact linear reads too, else
// in the exact linear's own (F16/F32 weights, small shapes). One copy either way.
struct PlacedLinear {
  std::optional<DeviceLinear> fast;
  std::optional<ExactDeviceWeight> exact;
  ops::ExactWeight ref;
  size_t bytes = 0;
};

// The routed experts of one MoE layer as device tables for linear_exact_gathered.
struct ExpertTables {
  DeviceBuffer w1, w3, w2;  // ops::ExactWeight [experts]
  ops::ExactWeightKind kind1{}, kind2{};
  WeightEncoding encoding1{}, encoding2{};
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device = 0);
  ~CudaBackend() override;

  DeviceKind kind() const override { return DeviceKind::kCuda; }
  std::string description() const override { return description_; }

  MemoryInfo memory_info() const override;
  ::fp4serve::DeviceBuffer allocate(size_t bytes) override;

  uint64_t placement_bytes(const LinearWeight& weight) const override;
  uint64_t placement_bytes(const TensorView& table) const override;
  void place(const LinearWeight& weight) override;
  const void* place(const TensorView& table) override;
  const float* place(std::span<const float> values) override;
  const int32_t* place(std::span<const int32_t> values) override;
  void set_placement_progress(PlacementProgress progress) override { progress_ = std::move(progress); }

  void copy_to_device(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void copy_on_device(void* dst, const void* src, size_t bytes) override;
  void fill(float* dst, int64_t count, float value) override;
  void synchronize() override;

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
  // The placed copy of a weight; Error naming it when it was never placed.
  const PlacedLinear& placed(const LinearWeight* weight) const;
  // One linear from fp32 rows: the Hopper GEMMs where they compute the job's policy on
  // the whole weight with bf16 outputs, else the exact linear (quantizing first when act
  // says so).
  void run_linear(const LinearJob& job);
  bool run_on_gemm(const LinearJob& job, const PlacedLinear& w);
  template <typename T>
  T* work(Work slot, int64_t count) {
    return static_cast<T*>(work_bytes(slot, static_cast<size_t>(count) * sizeof(T)));
  }
  void* work_bytes(Work slot, size_t bytes);
  // Host data into a work buffer, in stream order.
  template <typename T>
  T* upload_work(Work slot, const std::vector<T>& host) {
    T* d = work<T>(slot, static_cast<int64_t>(host.size()) + 1);
    if (!host.empty()) copy_to_device(d, host.data(), host.size() * sizeof(T));
    return d;
  }
  const ExpertTables& expert_tables(const MoeParams& p);

  cudaStream_t stream_ = nullptr;
  std::string description_;
  std::unordered_map<const LinearWeight*, PlacedLinear> linears_;
  std::unique_ptr<GpuContext> gemm_context_;  // split-K scratch and work buffers of the GEMMs
  std::unordered_map<const void*, DeviceBuffer> tables_;
  std::vector<DeviceBuffer> small_;
  std::unordered_map<const LinearWeight*, ExpertTables> experts_;
  std::array<DeviceBuffer, static_cast<size_t>(Work::kCount)> work_;
  PlacementProgress progress_;
  // Host staging of the per-step tables (kept so their memory outlives the async copy).
  std::vector<ops::StepRow> step_rows_;
  std::vector<ops::StepRun> step_runs_;
  std::vector<ops::EmittedEntry> emitted_main_, emitted_index_;
};

}  // namespace fp4serve::cuda
