// The decode cost model's wire bytes against the formulas written out by hand.
#include <gtest/gtest.h>

#include "checkpoint/test_model.h"
#include "parallel/decode_cost.h"

namespace fp4serve {
namespace {

TEST(DecodeCost, WireBytesPerLayerAndToken) {
  const ModelConfig tiny = tiny_test_config();  // hidden 256, 2 experts per token
  EXPECT_EQ(wire_bytes_per_layer_token(tiny, DecodeLayout::kTensorParallel, 1), 0);
  // Two ring all-reduces of 256 BF16 values over 4 ranks: each rank sends 2 * 3/4 * 512 bytes per reduce.
  EXPECT_DOUBLE_EQ(wire_bytes_per_layer_token(tiny, DecodeLayout::kTensorParallel, 4), 2 * 768.0);
  EXPECT_DOUBLE_EQ(wire_bytes_per_layer_token(tiny, DecodeLayout::kExpertParallel, 4), 2 * 768.0);
  // Dispatch and combine of 2 copies of 512 bytes, 3/4 of which leave the rank.
  EXPECT_DOUBLE_EQ(wire_bytes_per_layer_token(tiny, DecodeLayout::kExpertParallelDataAttention, 4), 2 * 2 * 384.0);
  // V4-Pro at TP 8: 2 * 2 * 7/8 * 7168 * 2 bytes.
  EXPECT_DOUBLE_EQ(wire_bytes_per_layer_token(test_model_config("v4-pro"), DecodeLayout::kTensorParallel, 8),
                   2 * 2 * 7.0 / 8 * 14336);
}

}  // namespace
}  // namespace fp4serve
