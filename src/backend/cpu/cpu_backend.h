// The CPU backend: backend/backend.h over host memory. Device pointers are host
// pointers, placement views the checkpoint's mapped bytes (nothing is copied), and
// each op is the executable spec every other backend is tested against: bit-exact to
// DeepSeek's inference/model.py at its bf16 rounding points.
#pragma once

#include <memory>

#include "backend/backend.h"
#include "backend/cpu/attention.h"
#include "backend/cpu/mhc.h"
#include "backend/cpu/moe.h"

namespace fp4serve::cpu {

class CpuBackend final : public Backend {
 public:
  CpuBackend() = default;

  DeviceKind kind() const override { return DeviceKind::kCpu; }
  std::string description() const override;

  MemoryInfo memory_info() const override;
  DeviceBuffer allocate(size_t bytes) override;

  uint64_t placement_bytes(const LinearWeight&) const override { return 0; }
  uint64_t placement_bytes(const TensorView&) const override { return 0; }
  void place(const LinearWeight&) override {}
  const void* place(const TensorView& table) override { return table.data; }
  const float* place(std::span<const float> values) override { return values.data(); }
  const int32_t* place(std::span<const int32_t> values) override { return values.data(); }
  void set_placement_progress(PlacementProgress) override {}

  void copy_to_device(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void copy_on_device(void* dst, const void* src, size_t bytes) override;
  void fill(float* dst, int64_t count, float value) override;
  void synchronize() override {}

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

  // The observer is this backend's own (set per instance): two models on two backends
  // never see each other's inputs.
  void set_activation_observer(ActivationObserver* observer) override { observer_ = observer; }

 private:
  ActivationObserver* observer_ = nullptr;
  HcHeadScratch hc_head_scratch_;
  AttentionScratch attention_scratch_;
  MoeScratch moe_scratch_;
};

}  // namespace fp4serve::cpu
