// Token-id files: raw uint16 little-endian ids, one after another, no header (the
// layout of the default model's held-out set, tools/default_model/heldout_tokens.u16,
// which numpy writes with ids.astype('<u2').tofile()). Used by `bench perplexity` and
// `quantize --calibrate-tokens`; both cut the stream into windows the same way.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace fp4serve {

// Throws Error naming the file: missing, unreadable, empty, or an odd byte count.
std::vector<int32_t> read_u16_token_ids(const std::string& path);

// Consecutive windows of `window` tokens (the last one shorter), each meant as an
// independent sequence from position 0. window > 0.
std::vector<std::span<const int32_t>> token_windows(std::span<const int32_t> tokens, int64_t window);

}  // namespace fp4serve
