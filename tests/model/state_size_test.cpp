// config/state_size.h is the one formula for a sequence's state: the slot model/state_layout
// lays out, the rate `fp4serve plan` and `fp4serve inspect` report. These tests hold the
// layout, the exact size and the rate to each other and to figures worked out by hand.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "checkpoint/test_model.h"
#include "config/state_size.h"
#include "model/state_layout.h"

namespace fp4serve {
namespace {

TEST(StateSize, TinyByHand) {
  // tiny: ratios {0, 4, 16, 4} + one MTP block of ratio 0; head_dim = index_head_dim = 128,
  // window 16. Windows: 5 x 16 x 128 = 10240. Each CSA compressor (two per CSA layer: kv and
  // indexer) keeps kv and score windows of 8 x 256 = 2048 and the HCA one of 16 x 128 = 2048:
  // 5 x 4096 = 20480; each of the 5 compressors one spare entry of 128: 640. Fixed: 31360.
  // Entries: 4 x floor(N/4) x 128 + floor(N/16) x 128.
  const ModelConfig c = tiny_test_config();
  EXPECT_EQ(state_floats(c, 1), 31360);
  EXPECT_EQ(state_floats(c, 5), 31360 + 4 * 128);
  EXPECT_EQ(state_floats(c, 127), 31360 + 4 * 31 * 128 + 7 * 128);
  EXPECT_EQ(state_floats(c, 128), 31360 + 4 * 32 * 128 + 8 * 128);
  const StateRate rate = state_rate(c);
  EXPECT_EQ(rate.bytes_per_sequence, 31360u * 4);
  EXPECT_EQ(rate.bytes_per_token, (4 * 128 / 4 + 128 / 16) * 4.0);  // 136 floats per token
}

TEST(StateSize, DsparkContextRingsByHand) {
  // The tiny model with a DSpark draft instead of the MTP block: no MTP window (-16 x 128), three
  // stages of a [16, 128] context ring (+3 x 2048), placed after the attention layers' state.
  const ModelConfig c = with_draft(tiny_test_config(), DraftKind::kDSpark);
  EXPECT_EQ(draft_ring_floats(c), 3 * 16 * 128);
  EXPECT_EQ(state_floats(c, 1), 31360 - 16 * 128 + 3 * 16 * 128);
  EXPECT_EQ(state_rate(c).bytes_per_sequence, static_cast<uint64_t>(31360 - 16 * 128 + 3 * 16 * 128) * 4);
  const StateLayout layout = state_layout(c, 64);
  EXPECT_EQ(layout.draft_ring_floats, 16 * 128);
  EXPECT_EQ(layout.draft_rings + 3 * layout.draft_ring_floats, layout.slot_floats);
  EXPECT_EQ(state_layout(tiny_test_config(), 64).draft_rings, -1);
  // What speculative decoding saves before a verification: each main layer's window ring and
  // compressors' partial windows (4 x 2048 + 5 x 4096), never entries or draft rings.
  int64_t saved = 0;
  for (const StateFill& r : rollback_regions(c, layout)) saved += r.count;
  EXPECT_EQ(saved, 4 * 16 * 128 + 5 * 4096);
}

TEST(StateSize, V4ProRateByHand) {
  // 31 HCA layers of 512/128 and 30 CSA layers of 512/4 + 128/4 values per token, in float32.
  EXPECT_EQ(state_rate(test_model_config("v4-pro")).bytes_per_token, (31.0 * 4 + 30.0 * 160) * 4);
}

TEST(StateSize, RejectsAShortRatioList) {
  ModelConfig c = tiny_test_config();
  c.compress_ratios.resize(3);
  try {
    state_rate(c);
    FAIL() << "a config with 3 ratios for 4 layers and 1 MTP layer was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("compress_ratios"), std::string::npos) << e.what();
  }
}

// For every preset and several contexts: the layout's regions tile the slot with nothing left
// over, the slot is the rate's fixed part plus floor(N / r) entries per compressor, and the
// rate's linear figure bounds it (exactly when every ratio divides the context).
class StateSizeAgreement : public ::testing::TestWithParam<const char*> {};

TEST_P(StateSizeAgreement, LayoutExactSizeAndRateAgree) {
  const ModelConfig c = test_model_config(GetParam());
  const StateRate rate = state_rate(c);
  for (const int64_t context : {1, 4, 5, 127, 128, 4096}) {
    SCOPED_TRACE(context);
    const StateLayout layout = state_layout(c, context);
    ASSERT_EQ(layout.layers.size(), static_cast<size_t>(c.num_layers + c.num_mtp_layers));
    std::vector<std::pair<int64_t, int64_t>> regions;  // offset, floats
    int64_t entries = 0;                               // floats of entries beyond the spare ones
    bool every_ratio_divides = true;
    auto add_compressor = [&](const CompressorStateLayout& l, int64_t ratio, int64_t dim) {
      const int64_t overlap = ratio == 4 ? 2 : 1, cells = overlap * ratio * overlap * dim;
      EXPECT_EQ(l.capacity, context / ratio + 1);
      regions.push_back({l.kv, cells});
      regions.push_back({l.score, cells});
      regions.push_back({l.entries, l.capacity * dim});
      entries += (context / ratio) * dim;
      every_ratio_divides = every_ratio_divides && context % ratio == 0;
    };
    for (size_t i = 0; i < layout.layers.size(); ++i) {
      const int64_t ratio = c.compress_ratio(static_cast<int64_t>(i));
      regions.push_back({layout.layers[i].window, c.sliding_window * c.head_dim});
      if (ratio > 0) add_compressor(layout.layers[i].compressor, ratio, c.head_dim);
      if (ratio == 4) add_compressor(layout.layers[i].index_compressor, 4, c.index_head_dim);
    }
    std::sort(regions.begin(), regions.end());
    int64_t end = 0;
    for (const auto& [offset, floats] : regions) {
      EXPECT_EQ(offset, end);
      end = offset + floats;
    }
    EXPECT_EQ(end, layout.slot_floats);
    EXPECT_EQ(state_floats(c, context), layout.slot_floats);
    EXPECT_EQ(layout.slot_bytes(), rate.bytes_per_sequence + static_cast<uint64_t>(entries) * 4);
    const double linear = static_cast<double>(rate.bytes_per_sequence) + static_cast<double>(context) * rate.bytes_per_token;
    if (every_ratio_divides)
      EXPECT_EQ(static_cast<double>(layout.slot_bytes()), linear);
    else
      EXPECT_LT(static_cast<double>(layout.slot_bytes()), linear);
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, StateSizeAgreement, ::testing::Values("tiny", "tiny-pro", "flash", "v4-flash", "v4-pro"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace fp4serve
