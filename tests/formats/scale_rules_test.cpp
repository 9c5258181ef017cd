// Scale rules: hand-checked values, the floors, and the claim that DeepSeek's multiply by fp32(1/448)
// or fp32(1/6) picks the same power of two as the division, over a dense sample.
#include "formats/scale_rules.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>

#include "format_references.h"
#include "formats/number_formats.h"

namespace fp4serve {
namespace {

TEST(ScaleRules, Fp8Ue8m0) {
  EXPECT_EQ(fp8_scale_ue8m0(300.0f), 0x7F);
  EXPECT_EQ(fp8_scale_ue8m0(1000.0f), 0x81);
  EXPECT_EQ(fp8_scale_ue8m0(448.0f), 0x7F);
  EXPECT_EQ(fp8_scale_ue8m0(testing::ulp_above(448.0f)), 0x80);
  // All-zero block: amax floored at 1e-4, 1e-4 / 448 = 2.2e-7 -> 2^-22.
  EXPECT_EQ(fp8_scale_ue8m0(0.0f), 127 - 22);
  EXPECT_EQ(fp8_scale_f32(0.0f), 1e-4f / 448.0f);
  EXPECT_EQ(fp8_scale_f32(448.0f), 1.0f);
}

TEST(ScaleRules, Fp4Ue8m0) {
  EXPECT_EQ(fp4_scale_ue8m0(3.0f), 0x7E);
  EXPECT_EQ(fp4_scale_ue8m0(7.0f), 0x80);
  EXPECT_EQ(fp4_scale_ue8m0(6.0f), 0x7F);
  EXPECT_EQ(fp4_scale_ue8m0(0.0f), 0x01);  // floor 6 * 2^-126 keeps the byte >= 1
}

TEST(ScaleRules, ReciprocalMultiplyPicksTheSamePowerOfTwoAsDivision) {
  int checked = 0;
  for (float amax : testing::float_sample(521, 100000, 6)) {
    if (!(amax > 0) || !std::isfinite(amax)) continue;
    const float fp8_amax = std::max(amax, 1e-4f);
    ASSERT_EQ(encode_e8m0_ceil(fp8_amax * (1.0f / 448.0f)), fp8_scale_ue8m0(amax)) << amax;
    const float fp4_amax = std::max(amax, 6 * 0x1p-126f);
    ASSERT_EQ(encode_e8m0_ceil(fp4_amax * (1.0f / 6.0f)), fp4_scale_ue8m0(amax)) << amax;
    ++checked;
  }
  EXPECT_GT(checked, 4000000);
}

TEST(ScaleRules, Nvfp4) {
  EXPECT_EQ(std::bit_cast<uint32_t>(nvfp4_global_scale(3.0f)), 0x3A924925u);
  const float gs = nvfp4_global_scale(3.0f);
  EXPECT_EQ(nvfp4_block_scale(3.0f, gs), 0x7E);    // the tensor's amax maps to 448
  EXPECT_EQ(nvfp4_block_scale(0.016f, gs), 0x42);  // 2.389 -> 2.5
  EXPECT_EQ(nvfp4_block_scale(0.0f, gs), 0x38);    // all-zero block -> 1.0
  EXPECT_EQ(nvfp4_block_scale(1e-9f, gs), 0x01);   // clamped up to 2^-9
  EXPECT_EQ(nvfp4_block_scale(10.0f, gs), 0x7E);   // clamped down to 448 (a shared amax below it)
}

}  // namespace
}  // namespace fp4serve
