// The KV compressor of CSA / HCA layers and of the indexer (dsv4-architecture.md
// §3.4, §4), in its streaming form: each token's projections (a, z + ape) enter a
// per-sequence state; when a window of `ratio` tokens is complete, one entry is
// emitted: a per-feature softmax over the window's z weights the a values (with
// overlap, ratio 4: over the previous window's first half and this window's second
// half, 2*ratio candidates). The entry is then RMS-normed, RoPE'd at the window's
// first position and, under the QAT simulation, FP8-rounded (main) or Hadamard-
// rotated and FP4-rounded (indexer).
#pragma once

#include <cstdint>
#include <vector>

#include "model/rope.h"
#include "model/weights.h"

namespace fp4serve {

struct CompressorState {
  // Partial windows, as the reference's kv_state / score_state [coff*ratio, coff*d]:
  // with overlap rows [0, ratio) hold the previous complete window, [ratio, 2*ratio) the current one.
  std::vector<float> kv, score;
  std::vector<float> entries;  // emitted entries [count, d]
  int64_t count = 0;

  void reset(const CompressorWeights& w, int64_t reserve_entries);
};

enum class CompressorKind { kMain, kIndexer };

struct CompressorContext {
  const CompressorWeights* weights = nullptr;
  const RopeTable* rope = nullptr;
  int64_t rope_dim = 0;
  float norm_eps = 1e-6f;
  bool qat_simulation = false;
  CompressorKind kind = CompressorKind::kMain;
};

// Ingests token `position` with a = wkv x and z = wgate x (fp32, coff*d each, no ape yet).
// Returns true when it emitted an entry (the new last row of state.entries).
bool compressor_ingest(const CompressorContext& ctx, CompressorState& state, int64_t position, const float* a, const float* z);

// The pooled value of one window before normalization (exposed for tests): out[f] =
// sum_t softmax_t(score[t][f]) * kv[t][f] over `candidates` rows (rows of -inf score
// contribute nothing).
void softmax_pool(const float* kv, const float* score, int64_t candidates, int64_t stride, int64_t d, float* out);

}  // namespace fp4serve
