#ifdef FP4SERVE_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"

#include <fmt/format.h>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda_probe.h"
#include "base/error.h"

namespace fp4serve {

std::unique_ptr<Backend> make_cuda_backend(int device) { return std::make_unique<cuda::CudaBackend>(device); }

namespace cuda {
namespace {

void release_device(void* /*context*/, void* ptr) { cudaFree(ptr); }

}  // namespace

CudaBackend::CudaBackend(int device) {
  FP4SERVE_CHECK(device >= 0 && device < cuda_device_count(), "--device cuda: GPU {} asked for, {} visible", device,
                 cuda_device_count());
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, device), "device query");
  // The kernels are built for sm_90a only (CMakeLists.txt FP4SERVE_CUDA_ARCH).
  FP4SERVE_CHECK(prop.major == 9, "--device cuda: {} is compute capability {}.{}; this build's kernels need a Hopper GPU (9.0)",
                 prop.name, prop.major, prop.minor);
  check_cuda(cudaSetDevice(device), "cudaSetDevice");
  // A blocking stream: the GEMMs' scratch set-up and the uploads run on the legacy stream,
  // which then orders with this one.
  check_cuda(cudaStreamCreate(&stream_), "stream creation");
  gemm_context_ = std::make_unique<GpuContext>(stream_);
  description_ = fmt::format("cuda: {} ({} SMs, {:.0f} GiB)", prop.name, prop.multiProcessorCount,
                             static_cast<double>(prop.totalGlobalMem) / (1u << 30));
}

CudaBackend::~CudaBackend() {
  cudaStreamSynchronize(stream_);
  // Buffers free themselves; the stream goes last.
  linears_.clear();
  tables_.clear();
  small_.clear();
  experts_.clear();
  gemm_context_.reset();
  for (DeviceBuffer& b : work_) b = DeviceBuffer();
  cudaStreamDestroy(stream_);
}

MemoryInfo CudaBackend::memory_info() const {
  size_t free = 0, total = 0;
  check_cuda(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
  return {free, total};
}

::fp4serve::DeviceBuffer CudaBackend::allocate(size_t bytes) {
  void* ptr = nullptr;
  if (bytes > 0 && cudaMalloc(&ptr, bytes) != cudaSuccess) {
    cudaGetLastError();
    const MemoryInfo m = memory_info();
    fail("GPU allocation of {} bytes failed: {} bytes free of {}", bytes, m.free_bytes, m.total_bytes);
  }
  return ::fp4serve::DeviceBuffer(ptr, bytes, &release_device, nullptr);
}

namespace {

bool fits_gemms(const LinearWeight& w) {
  const bool encoding = w.encoding == WeightEncoding::kBF16 || w.encoding == WeightEncoding::kFP8Block ||
                        w.encoding == WeightEncoding::kMXFP4 || w.encoding == WeightEncoding::kNVFP4;
  return encoding && w.in_features % 128 == 0 && w.out_features % 16 == 0;
}

ops::ExactWeightKind exact_kind(WeightKind k) {
  switch (k) {
    case WeightKind::kBF16: return ops::ExactWeightKind::kBF16;
    case WeightKind::kFP8Block: return ops::ExactWeightKind::kFP8Block;
    case WeightKind::kMXFP4: return ops::ExactWeightKind::kMXFP4;
    case WeightKind::kNVFP4: return ops::ExactWeightKind::kNVFP4;
  }
  return ops::ExactWeightKind::kBF16;
}

}  // namespace

// The GEMMs' layout and the exact one hold the same bytes (FP8 scales as floats).
uint64_t CudaBackend::placement_bytes(const LinearWeight& weight) const { return ExactDeviceWeight::device_bytes_for(weight); }

uint64_t CudaBackend::placement_bytes(const TensorView& table) const { return table.nbytes; }

void CudaBackend::place(const LinearWeight& weight) {
  if (linears_.count(&weight)) return;
  PlacedLinear p;
  if (fits_gemms(weight)) {
    p.fast = DeviceLinear::upload(weight);
    const DeviceLinear& d = *p.fast;
    p.ref = {exact_kind(d.kind()), d.weight_data(), d.scale_data(), d.global_scale(), d.out_features(), d.in_features()};
    p.bytes = d.device_bytes();
  } else {
    p.exact = ExactDeviceWeight::upload(weight);
    p.ref = p.exact->ref();
    p.bytes = p.exact->device_bytes();
  }
  const uint64_t bytes = p.bytes;
  linears_.emplace(&weight, std::move(p));
  if (progress_) progress_(bytes);
}

const void* CudaBackend::place(const TensorView& table) {
  FP4SERVE_CHECK(table.dtype == DType::BF16 || table.dtype == DType::F16 || table.dtype == DType::F32,
                 "{}: an embedding table must be BF16, F16 or F32, not {}", table.origin, dtype_name(table.dtype));
  auto it = tables_.find(table.data);
  if (it != tables_.end()) return it->second.data();
  DeviceBuffer b(table.nbytes);
  b.upload(table.data, table.nbytes);
  const void* d = b.data();
  tables_.emplace(table.data, std::move(b));
  if (progress_) progress_(table.nbytes);
  return d;
}

const float* CudaBackend::place(std::span<const float> values) {
  small_.emplace_back(values.size_bytes() + sizeof(float));
  if (!values.empty()) small_.back().upload(values.data(), values.size_bytes());
  if (progress_) progress_(values.size_bytes());
  return small_.back().as<float>();
}

const int32_t* CudaBackend::place(std::span<const int32_t> values) {
  small_.emplace_back(values.size_bytes() + sizeof(int32_t));
  if (!values.empty()) small_.back().upload(values.data(), values.size_bytes());
  if (progress_) progress_(values.size_bytes());
  return small_.back().as<int32_t>();
}

void CudaBackend::copy_to_device(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  // From pageable host memory the call returns once the source is staged, so the caller
  // may reuse it at once (backend.h's contract).
  check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_), "copy to device");
}

void CudaBackend::copy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_), "copy to host");
  synchronize();
}

void CudaBackend::copy_on_device(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_), "copy on device");
}

void CudaBackend::fill(float* dst, int64_t count, float value) { ops::fill(stream_, dst, count, value); }

void CudaBackend::synchronize() { check_cuda(cudaStreamSynchronize(stream_), "stream synchronize"); }

void* CudaBackend::work_bytes(Work slot, size_t bytes) {
  DeviceBuffer& b = work_[static_cast<size_t>(slot)];
  if (b.bytes() < bytes) {
    synchronize();  // queued kernels may still read the old buffer
    b = DeviceBuffer(bytes + bytes / 2);
  }
  return b.data();
}

const PlacedLinear& CudaBackend::placed(const LinearWeight* weight) const {
  FP4SERVE_CHECK(weight != nullptr, "a linear without a weight");
  auto it = linears_.find(weight);
  FP4SERVE_CHECK(it != linears_.end(), "linear {}: not placed on the GPU (Backend::place first)", weight->name);
  return it->second;
}

void CudaBackend::embed(const EmbedParams& p) {
  ops::EmbedTable type = ops::EmbedTable::kF32;
  if (p.dtype == DType::BF16) type = ops::EmbedTable::kBF16;
  else if (p.dtype == DType::F16) type = ops::EmbedTable::kF16;
  else FP4SERVE_CHECK(p.dtype == DType::F32, "embedding table of dtype {}: BF16, F16 or F32 expected", dtype_name(p.dtype));
  ops::embed(stream_, p.table, type, p.dim, p.tokens, p.rows, p.copies, p.out);
}

void CudaBackend::hc_pre(const HcPreParams& p) {
  const int64_t m = (2 + p.hc) * p.hc, width = p.hc * p.dim;
  const ops::ExactWeight& fn = placed(p.site.fn).ref;
  FP4SERVE_CHECK(fn.n == m && fn.k == width, "{}: [{}, {}], expected [{}, {}] for hc_pre", p.site.fn->name, fn.n, fn.k, m,
                 width);
  ops::linear_exact(stream_, {fn, p.X, width, p.rows, p.mixes, m, 0, m, false});
  ops::hc_scale_mixes(stream_, p.X, p.rows, width, p.norm_eps, p.mixes, m);
  ops::hc_sinkhorn(stream_, p.mixes, p.site.scale, p.site.base, p.rows, p.hc, p.sinkhorn_iters, p.hc_eps, p.pre, p.post, p.comb);
  ops::hc_collapse(stream_, p.X, p.pre, p.rows, p.dim, p.hc, p.u);
}

void CudaBackend::hc_post(const HcPostParams& p) { ops::hc_post(stream_, p.y, p.X, p.rows, p.dim, p.hc, p.post, p.comb); }

void CudaBackend::hc_head(const HcHeadParams& p) {
  const int64_t width = p.hc * p.dim;
  const ops::ExactWeight& fn = placed(p.site.fn).ref;
  FP4SERVE_CHECK(fn.n == p.hc && fn.k == width, "{}: [{}, {}], expected [{}, {}] for hc_head", p.site.fn->name, fn.n,
                 fn.k, p.hc, width);
  float* picked = work<float>(Work::kGathered, p.rows * width);
  float* mixes = work<float>(Work::kMixes, p.rows * p.hc);
  float* pre = work<float>(Work::kRouteWeights, p.rows * p.hc);
  ops::gather_rows(stream_, p.X, p.row_ids, p.rows, width, picked);
  ops::linear_exact(stream_, {fn, picked, width, p.rows, mixes, p.hc, 0, p.hc, false});
  ops::hc_scale_mixes(stream_, picked, p.rows, width, p.norm_eps, mixes, p.hc);
  ops::hc_head_weights(stream_, mixes, p.site.scale, p.site.base, p.rows, p.hc, p.hc_eps, pre);
  ops::hc_collapse(stream_, picked, pre, p.rows, p.dim, p.hc, p.y);
}

void CudaBackend::rms_norm(const RmsNormParams& p) {
  ops::rms_norm(stream_, p.x, p.dim, p.weight, p.rows, p.dim, p.eps, p.y, p.dim);
}

void CudaBackend::add_to_streams(const AddToStreamsParams& p) { ops::add_broadcast_bf16(stream_, p.X, p.e, p.rows, p.hc, p.dim); }

void CudaBackend::set_activation_observer(ActivationObserver* observer) {
  FP4SERVE_CHECK(observer == nullptr,
                 "activation calibration (quantize --calibrate-tokens) runs on the CPU backend: the CUDA backend keeps "
                 "activations on the GPU");
}

}  // namespace cuda
}  // namespace fp4serve
#endif
