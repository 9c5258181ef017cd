// The one linear op of the CPU backend: y = x @ W^T (LinearJob, backend/backend.h)
// for a LinearWeight of any encoding (BF16, F16, F32, FP8 block-128, MXFP4, NVFP4),
// over a range of output rows (wo_a's groups are row ranges), for many independent (weight, rows) jobs at
// once (routed experts: the grouped form), spread over the thread pool.
#pragma once

#include <cstdint>
#include <span>

#include "backend/backend.h"
#include "backend/cpu/thread_pool.h"
#include "formats/activation_observer.h"

namespace fp4serve::cpu {

// Checks every job (shapes, encodings, block alignment) and throws Error naming the
// weight, then runs them all. No allocation once the scratch buffers have grown.
// `observer` (calibration, see CpuBackend::set_activation_observer) sees every job's
// input first; nullptr costs nothing.
void linear(std::span<const LinearJob> jobs, ActivationObserver* observer = nullptr, ThreadPool& pool = ThreadPool::global());
void linear(const LinearJob& job, ActivationObserver* observer = nullptr, ThreadPool& pool = ThreadPool::global());

}  // namespace fp4serve::cpu
