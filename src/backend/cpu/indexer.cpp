#include "backend/cpu/indexer.h"

#include <algorithm>
#include <numeric>

#include "formats/number_formats.h"
#include "backend/cpu/parallel.h"

namespace fp4serve::cpu {

void index_scores(const float* q, const float* weights, int64_t heads, int64_t dim, const float* keys, int64_t count,
                  float* scores) {
  // Entries are independent: they spread over the pool once the context is long.
  parallel_units(count, count * heads * dim * 2, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const float* k = keys + c * dim;
      float total = 0.0f;
      for (int64_t h = 0; h < heads; ++h) {
        const float* qh = q + h * dim;
        float dot = 0.0f;
        for (int64_t i = 0; i < dim; ++i) dot += qh[i] * k[i];
        const float relu = std::max(round_bf16(dot), 0.0f);  // bf16 einsum output, relu in bf16
        total += round_bf16(relu * weights[h]);               // bf16 product, fp32 head sum
      }
      scores[c] = round_bf16(total);
    }
  });
}

void top_k(const float* scores, int64_t count, int64_t topk, std::vector<int32_t>& out) {
  const int64_t k = std::min(topk, count);
  out.resize(static_cast<size_t>(count));
  std::iota(out.begin(), out.end(), 0);
  std::partial_sort(out.begin(), out.begin() + k, out.end(), [&](int32_t a, int32_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  });
  out.resize(static_cast<size_t>(k));
}

}  // namespace fp4serve::cpu
