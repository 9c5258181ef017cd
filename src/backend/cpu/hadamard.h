// The Walsh-Hadamard rotation DeepSeek-V4's indexer applies before its FP4 QAT
// simulation: y = bf16(H_n x / sqrt(n)), H_n the Sylvester (natural order) matrix,
// computed in fp32 with the fast butterfly. n must be a power of two.
#pragma once

#include <cstdint>

namespace fp4serve::cpu {

void hadamard_rotate(float* x, int64_t n);

}  // namespace fp4serve::cpu
