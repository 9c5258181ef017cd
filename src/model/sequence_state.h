// Everything one sequence carries between steps (dsv4-architecture.md §4), per
// attention layer: the window ring of raw KV (slot = position mod W), the main
// compressor's partial windows and emitted entries, the indexer compressor's
// partial windows and index keys. Sized at creation for `reserve_tokens` positions,
// so decoding within that length never allocates.
#pragma once

#include <cstdint>
#include <vector>

#include "model/compressor.h"

namespace fp4serve {

struct AttentionState {
  std::vector<float> window;  // [W, head_dim]
  CompressorState compressor;
  CompressorState index_compressor;
};

class SequenceState {
 public:
  // Tokens this sequence has consumed (the position of the next token).
  int64_t position() const { return position_; }
  // Tokens the MTP block has consumed.
  int64_t mtp_position() const { return mtp_position_; }

 private:
  friend class Model;
  int64_t position_ = 0;
  int64_t mtp_position_ = 0;
  std::vector<AttentionState> layers_;  // main layers, then MTP blocks
};

}  // namespace fp4serve
