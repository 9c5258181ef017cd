#pragma once

#include <string>

namespace fp4serve {

// "fp4serve 0.1.0 (commit abc123)\ncuda: sm_90a" — the CUDA line says whether the
// Hopper kernels are compiled in and for which target, and whether a GPU is visible.
std::string version_string();

}  // namespace fp4serve
