// A rank's own copy of its part of a linear or tensor, read from the shards by byte
// range (RangedReader): the weight's rows and columns and exactly the block scales
// that go with them, as a LinearWeight of the slice's shape.
#pragma once

#include <functional>

#include "formats/linear_weight.h"
#include "io/ranged_read.h"
#include "parallel/shard_plan.h"

namespace fp4serve {

// Where the bytes come from: RangedReader::read (pread from the shard files) or
// copy_runs (a checkpoint already in memory, such as a random one).
using ReadRuns = std::function<void(const ByteRuns& runs, std::byte* out)>;
ReadRuns ranged_reads(RangedReader& reader);
void copy_runs(const ByteRuns& runs, std::byte* out);

// Throws Error naming the linear when the rect cuts an encoding block (the shard plan
// never makes such a rect) or leaves the weight.
LinearWeight read_linear_slice(const ReadRuns& read, const LinearWeight& linear, const SliceRect& rect);
inline LinearWeight read_linear_slice(RangedReader& reader, const LinearWeight& linear, const SliceRect& rect) {
  return read_linear_slice(ranged_reads(reader), linear, rect);
}

// The rect of a tensor seen as [rows, cols]: shape [rect rows] for a 1-D tensor, else
// [rect rows, rect cols].
TensorView read_tensor_slice(const ReadRuns& read, const TensorView& tensor, const SliceRect& rect);
inline TensorView read_tensor_slice(RangedReader& reader, const TensorView& tensor, const SliceRect& rect) {
  return read_tensor_slice(ranged_reads(reader), tensor, rect);
}

}  // namespace fp4serve
