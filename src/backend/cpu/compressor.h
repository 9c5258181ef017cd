// The KV compressor of CSA / HCA layers and of the indexer (DeepSeek's
// inference/model.py, Compressor), in its streaming form over a sequence's state slot:
// each token's projections (a, z + ape) enter the partial windows; when a window of
// `ratio` tokens is complete, one entry is emitted (CompressorParams in
// backend/backend.h says how).
#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "backend/cpu/rope.h"

namespace fp4serve::cpu {

enum class CompressorKind { kMain, kIndexer };

struct CompressorContext {
  const CompressorParams* params = nullptr;
  Rope rope;
  float norm_eps = 1e-6f;
  bool qat_simulation = false;
  CompressorKind kind = CompressorKind::kMain;
};

// Ingests token `position` with a = wkv x and z = wgate x (fp32, coff*dim each, no ape
// yet) into the compressor's state inside `slot`. Returns true when it emitted an
// entry (entry number (position + 1) / ratio - 1).
bool compressor_ingest(const CompressorContext& ctx, float* slot, int64_t position, const float* a, const float* z);

// Entries emitted once `position` has been ingested.
inline int64_t compressed_entries(int64_t ratio, int64_t position) { return (position + 1) / ratio; }

// The pooled value of one window before normalization (exposed for tests): out[f] =
// sum_t softmax_t(score[t][f]) * kv[t][f] over `candidates` rows (rows of -inf score
// contribute nothing).
void softmax_pool(const float* kv, const float* score, int64_t candidates, int64_t stride, int64_t d, float* out);

}  // namespace fp4serve::cpu
