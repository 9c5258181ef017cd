#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <new>
#include <string>

#include "backend/cpu/cpu_isa.h"
#include "backend/cpu/linear.h"
#include "backend/cpu/norms.h"
#include "formats/number_formats.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/thread_pool.h"
#include "base/error.h"

namespace fp4serve::cpu {
namespace {

constexpr size_t kAlignment = 64;

void release_host(void*, void* ptr) { ::operator delete(ptr, std::align_val_t(kAlignment)); }

// A field of /proc/meminfo in bytes, 0 when absent.
uint64_t meminfo_bytes(const std::string& field) {
  std::ifstream in("/proc/meminfo");
  std::string name;
  uint64_t kib = 0;
  std::string unit;
  while (in >> name >> kib) {
    std::getline(in, unit);
    if (name == field + ":") return kib * 1024;
  }
  return 0;
}

}  // namespace

std::string CpuBackend::description() const {
  return "cpu (" + std::string(isa_name(active_isa())) + ", " + std::to_string(ThreadPool::global().size()) + " threads)";
}

MemoryInfo CpuBackend::memory_info() const { return MemoryInfo{meminfo_bytes("MemAvailable"), meminfo_bytes("MemTotal")}; }

DeviceBuffer CpuBackend::allocate(size_t bytes) {
  // One allocation exactly the size asked: the state pool's byte accounting is what the
  // heap holds.
  void* ptr = ::operator new(std::max<size_t>(bytes, 1), std::align_val_t(kAlignment));
  return DeviceBuffer(ptr, bytes, &release_host, nullptr);
}

void CpuBackend::copy_to_device(void* dst, const void* src, size_t bytes) {
  if (bytes > 0 && dst != src) std::memmove(dst, src, bytes);
}

void CpuBackend::copy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes > 0 && dst != src) std::memmove(dst, src, bytes);
}

void CpuBackend::copy_on_device(void* dst, const void* src, size_t bytes) {
  if (bytes > 0 && dst != src) std::memmove(dst, src, bytes);
}

void CpuBackend::fill(float* dst, int64_t count, float value) { std::fill(dst, dst + count, value); }

void CpuBackend::embed(const EmbedParams& p) {
  const int64_t D = p.dim;
  for (int64_t r = 0; r < p.rows; ++r) {
    const int64_t token = p.tokens[r];
    float* out = p.out + r * p.copies * D;
    switch (p.dtype) {
      case DType::BF16: {
        const uint16_t* row = static_cast<const uint16_t*>(p.table) + token * D;
        for (int64_t d = 0; d < D; ++d) out[d] = decode_bf16(row[d]);
        break;
      }
      case DType::F16: {
        const uint16_t* row = static_cast<const uint16_t*>(p.table) + token * D;
        for (int64_t d = 0; d < D; ++d) out[d] = round_bf16(decode_f16(row[d]));
        break;
      }
      case DType::F32: {
        const float* row = static_cast<const float*>(p.table) + token * D;
        for (int64_t d = 0; d < D; ++d) out[d] = round_bf16(row[d]);
        break;
      }
      default: fail("embed: table dtype {} (expected BF16, F16 or F32)", dtype_name(p.dtype));
    }
    for (int64_t j = 1; j < p.copies; ++j) std::memcpy(out + j * D, out, static_cast<size_t>(D) * sizeof(float));
  }
}

void CpuBackend::hc_pre(const HcPreParams& p) { cpu::hc_pre(p, observer_); }
void CpuBackend::hc_post(const HcPostParams& p) { cpu::hc_post(p); }
void CpuBackend::hc_head(const HcHeadParams& p) { cpu::hc_head(p, hc_head_scratch_, observer_); }

void CpuBackend::rms_norm(const RmsNormParams& p) { rms_norm_rows(p.x, p.weight, p.rows, p.dim, p.eps, p.y); }

void CpuBackend::add_to_streams(const AddToStreamsParams& p) {
  for (int64_t t = 0; t < p.rows; ++t)
    for (int64_t j = 0; j < p.hc; ++j)
      for (int64_t d = 0; d < p.dim; ++d) {
        float& x = p.X[(t * p.hc + j) * p.dim + d];
        x = round_bf16(x + p.e[t * p.dim + d]);
      }
}

void CpuBackend::linear(std::span<const LinearJob> jobs) { cpu::linear(jobs, observer_); }
void CpuBackend::attention_heads(const AttentionHeadsParams& p) { cpu::attention_heads(p); }
void CpuBackend::attention_sequences(const AttentionSequencesParams& p, const StepRows& rows) {
  cpu::attention_sequences(p, rows, attention_scratch_);
}
void CpuBackend::moe(const MoeParams& p) { cpu::moe(p, moe_scratch_, observer_); }

void CpuBackend::mean_streams(const MeanStreamsParams& p) {
  const int64_t stride = p.y_stride > 0 ? p.y_stride : p.dim;
  for (int64_t t = 0; t < p.rows; ++t)
    for (int64_t d = 0; d < p.dim; ++d) {
      float sum = 0.0f;
      for (int64_t j = 0; j < p.hc; ++j) sum += p.X[(t * p.hc + j) * p.dim + d];
      p.y[t * stride + d] = round_bf16(sum / static_cast<float>(p.hc));
    }
}

void CpuBackend::block_attention(const BlockAttentionParams& p, const StepRows& rows) {
  cpu::block_attention(p, rows, attention_scratch_);
}

}  // namespace fp4serve::cpu
