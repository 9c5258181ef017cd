// The compute floor of the CPU kernels: the FLOP rate of the multiply instruction a SIMD
// level's tile kernels are built on (row_kernels.h), all pool threads issuing it from
// registers at once, so `bench prefill` can state its FLOP rate as a share of what the
// same instruction reaches on this machine in the same run.
#pragma once

#include <string>

#include "backend/cpu/cpu_isa.h"
#include "backend/cpu/thread_pool.h"

namespace fp4serve::cpu {

struct PeakFlops {
  double flops_per_second = 0;  // best of a few passes, all threads
  std::string instruction;      // "vdpbf16ps zmm", "vfmadd231ps zmm", ...
};

// The instruction the prefill kernels of `isa` multiply with: vdpbf16ps at avx512bf16
// (FP8, MXFP4 and BF16 weights; NVFP4 and F16/F32 weights take the avx512 fp32 path),
// fp32 FMA at avx512 and avx2, SSE multiply and add at scalar (what the compiler makes
// of the scalar kernels at the baseline).
PeakFlops measure_peak_flops(CpuIsa isa, ThreadPool& pool);

}  // namespace fp4serve::cpu
