// A rank's own copy of its part of a linear or tensor, read from the shards by byte
// range (RangedReader): the weight's rows and columns and exactly the block scales
// that go with them, as a LinearWeight of the slice's shape.
#pragma once

#include "formats/linear_weight.h"
#include "io/ranged_read.h"
#include "parallel/shard_plan.h"

namespace fp4serve {

// Throws Error naming the linear when the rect cuts an encoding block (the shard plan
// never makes such a rect) or leaves the weight.
LinearWeight read_linear_slice(RangedReader& reader, const LinearWeight& linear, const SliceRect& rect);

// The rect of a tensor seen as [rows, cols]: shape [rect rows] for a 1-D tensor, else
// [rect rows, rect cols].
TensorView read_tensor_slice(RangedReader& reader, const TensorView& tensor, const SliceRect& rect);

}  // namespace fp4serve
