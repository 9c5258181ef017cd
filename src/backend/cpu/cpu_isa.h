// Which SIMD level the CPU kernels run: picked once at start-up from the
// processor's features, and overridable (FP4SERVE_CPU_ISA=scalar|avx2|avx512|avx512bf16, or
// set_cpu_isa) so that tests can run every path on one machine.
#pragma once

#include <string_view>
#include <vector>

namespace fp4serve::cpu {

// kAvx512Bf16 adds AVX512-BF16 and AVX512-VBMI to kAvx512 (faster FP8 decode).
enum class CpuIsa { kScalar, kAvx2, kAvx512, kAvx512Bf16 };

std::string_view isa_name(CpuIsa isa);
CpuIsa active_isa();
// Throws Error if the processor lacks the level.
void set_cpu_isa(CpuIsa isa);
// Every level this processor can run, scalar first.
std::vector<CpuIsa> supported_isas();

}  // namespace fp4serve::cpu
