// Device memory ownership and the per-stream state the CUDA ops share: SM count, a split-K
// scratch area, and named work buffers that grow on demand (allocate them once with a warm-up
// call before capturing a CUDA graph: capture must not allocate).
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "backend/cuda/kernel_args.h"

namespace fp4serve::cuda {

// Throws fp4serve::Error "CUDA error in <what>: <name> (<description>)" unless ok.
void check_cuda(cudaError_t status, std::string_view what);

// A cudaMalloc'd block, freed on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  template <typename T>
  T* as() const { return static_cast<T*>(data_); }

  void upload(const void* host, size_t bytes, size_t offset = 0);
  void download(void* host, size_t bytes, size_t offset = 0) const;

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Work buffers of the ops, by purpose.
enum class WorkSlot : int {
  kActCodes, kActScales,  // FP8 activations of a linear
  kMoeSortedRow, kMoeSortedWeight, kMoePairPosition, kMoeItems, kMoeItemCount,
  kMoeHidden, kMoeHiddenCodes, kMoeHiddenScales, kMoePairOutputs,
  kWideWeight, kWideActivations,  // BF16 copies for the 4-bit prefill (prefill_widen.cu)
  kCount
};

class GpuContext {
 public:
  explicit GpuContext(cudaStream_t stream = nullptr);
  GpuContext(const GpuContext&) = delete;
  GpuContext& operator=(const GpuContext&) = delete;

  cudaStream_t stream() const { return stream_; }
  int num_sms() const { return num_sms_; }

  // Split-K scratch with at least this many partial floats and counters (counters zeroed).
  Scratch scratch(int64_t partial_floats, int64_t counters);
  // A work buffer of at least `bytes`; its contents do not survive a later, larger request.
  void* work(WorkSlot slot, size_t bytes);

 private:
  cudaStream_t stream_;
  int num_sms_ = 0;
  DeviceBuffer partials_;
  DeviceBuffer counters_;
  std::array<DeviceBuffer, static_cast<size_t>(WorkSlot::kCount)> work_;
};

}  // namespace fp4serve::cuda
