#include "backend/cpu/cpu_isa.h"

#include <cpuid.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "base/error.h"

namespace fp4serve::cpu {
namespace {

// clang 14's __builtin_cpu_supports does not know "f16c", so ask CPUID (leaf 1, ECX bit 29).
bool has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
}

bool supports(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar: return true;
    case CpuIsa::kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
    case CpuIsa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    case CpuIsa::kAvx512Bf16:
      return supports(CpuIsa::kAvx512) && __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vbmi");
  }
  return false;
}

CpuIsa initial_isa() {
  if (const char* env = std::getenv("FP4SERVE_CPU_ISA")) {
    const std::string want = env;
    for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512, CpuIsa::kAvx512Bf16}) {
      if (want == isa_name(isa)) {
        FP4SERVE_CHECK(supports(isa), "FP4SERVE_CPU_ISA={}: this processor cannot run it", want);
        return isa;
      }
    }
    fail("FP4SERVE_CPU_ISA={}: expected scalar, avx2, avx512 or avx512bf16", want);
  }
  if (supports(CpuIsa::kAvx512Bf16)) return CpuIsa::kAvx512Bf16;
  if (supports(CpuIsa::kAvx512)) return CpuIsa::kAvx512;
  if (supports(CpuIsa::kAvx2)) return CpuIsa::kAvx2;
  return CpuIsa::kScalar;
}

std::atomic<CpuIsa>& current() {
  static std::atomic<CpuIsa> isa{initial_isa()};
  return isa;
}

}  // namespace

std::string_view isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar: return "scalar";
    case CpuIsa::kAvx2: return "avx2";
    case CpuIsa::kAvx512: return "avx512";
    case CpuIsa::kAvx512Bf16: return "avx512bf16";
  }
  return "?";
}

CpuIsa active_isa() { return current().load(std::memory_order_relaxed); }

void set_cpu_isa(CpuIsa isa) {
  FP4SERVE_CHECK(supports(isa), "this processor cannot run {} kernels", isa_name(isa));
  current().store(isa, std::memory_order_relaxed);
}

std::vector<CpuIsa> supported_isas() {
  std::vector<CpuIsa> out;
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512, CpuIsa::kAvx512Bf16})
    if (supports(isa)) out.push_back(isa);
  return out;
}

}  // namespace fp4serve::cpu
