#ifdef FP4SERVE_HAVE_CUDA
#include "backend/cuda/gpu_context.h"

#include <cuda_runtime_api.h>

#include <utility>

#include "base/error.h"

namespace fp4serve::cuda {

void check_cuda(cudaError_t status, std::string_view what) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // clear a sticky launch error so the next call starts clean
  fail("CUDA error in {}: {} ({})", what, cudaGetErrorName(status), cudaGetErrorString(status));
}

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes > 0) check_cuda(cudaMalloc(&data_, bytes), fmt::format("cudaMalloc of {} bytes", bytes));
}

DeviceBuffer::~DeviceBuffer() {
  if (data_) cudaFree(data_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (data_) cudaFree(data_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::upload(const void* host, size_t bytes, size_t offset) {
  FP4SERVE_CHECK(offset + bytes <= bytes_, "device upload of {} bytes at {} overflows a {}-byte buffer", bytes, offset,
                 bytes_);
  check_cuda(cudaMemcpy(static_cast<char*>(data_) + offset, host, bytes, cudaMemcpyHostToDevice), "upload");
}

void DeviceBuffer::download(void* host, size_t bytes, size_t offset) const {
  FP4SERVE_CHECK(offset + bytes <= bytes_, "device download of {} bytes at {} overflows a {}-byte buffer", bytes,
                 offset, bytes_);
  check_cuda(cudaMemcpy(host, static_cast<const char*>(data_) + offset, bytes, cudaMemcpyDeviceToHost), "download");
}

GpuContext::GpuContext(cudaStream_t stream) : stream_(stream) {
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&num_sms_, cudaDevAttrMultiProcessorCount, device), "SM count");
}

Scratch GpuContext::scratch(int64_t partial_floats, int64_t counters) {
  if (static_cast<size_t>(partial_floats) * sizeof(float) > partials_.bytes()) {
    partials_ = DeviceBuffer(static_cast<size_t>(partial_floats) * sizeof(float));
  }
  if (static_cast<size_t>(counters) * sizeof(unsigned) > counters_.bytes()) {
    counters_ = DeviceBuffer(static_cast<size_t>(counters) * sizeof(unsigned));
    check_cuda(cudaMemset(counters_.data(), 0, counters_.bytes()), "zeroing split-K counters");
  }
  return Scratch{partials_.as<float>(), static_cast<int64_t>(partials_.bytes() / sizeof(float)),
                 counters_.as<unsigned>(), static_cast<int64_t>(counters_.bytes() / sizeof(unsigned))};
}

void* GpuContext::work(WorkSlot slot, size_t bytes) {
  DeviceBuffer& buffer = work_[static_cast<size_t>(slot)];
  if (bytes > buffer.bytes()) buffer = DeviceBuffer(bytes);
  return buffer.data();
}

}  // namespace fp4serve::cuda
#endif  // FP4SERVE_HAVE_CUDA
