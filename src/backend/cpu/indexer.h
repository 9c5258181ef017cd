// The lightning indexer's scoring and selection (DeepSeek's inference/model.py, Indexer): for one
// query, score[c] = sum_h w_h * relu(q_h . K_c) over the visible index keys, in the
// reference's bf16 rounding points, then the top-k entries (ties: lower index first).
#pragma once

#include <cstdint>
#include <vector>

namespace fp4serve::cpu {

// q [heads, dim] (roped, rotated), weights [heads] (already scaled), keys [count, dim].
// scores [count] receives bf16-valued scores.
void index_scores(const float* q, const float* weights, int64_t heads, int64_t dim, const float* keys, int64_t count,
                  float* scores);

// The indices of the k largest scores, best first; k = min(topk, count).
void top_k(const float* scores, int64_t count, int64_t topk, std::vector<int32_t>& out);

}  // namespace fp4serve::cpu
