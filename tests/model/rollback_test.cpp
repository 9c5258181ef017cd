// Speculative decoding's rollback (Model::save_for_rollback / roll_back, model_draft.cpp):
// after running drafted tokens that are then rejected, restoring and running the accepted
// prefix again leaves the sequence's state slot bit-identical to a sequence that never saw
// the rejected tokens: window rings, compressors' partial windows, compressed entries emitted
// from rejected tokens and the indexer's keys included.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "base/error.h"
#include "cpu_model.h"
#include "model_test_checkpoints.h"

namespace fp4serve {
namespace {

TEST(Rollback, StateIsBitIdenticalToNeverHavingSeenTheRejectedTokens) {
  // Sliding-window, CSA (ratio 4, with the indexer) and HCA-like (ratio 16) layers, window 8.
  const ModelConfig config = with_draft(testing::tiny_config({0, 4, 16, 4}, 1, 0), DraftKind::kDSpark);
  for (OutputLayout layout : {OutputLayout::kBF16, OutputLayout::kNative}) {
    const Checkpoint ckpt = testing::random_checkpoint(config, layout, 77);
    testing::CpuModel a(ckpt), b(ckpt);
    std::vector<int32_t> prompt;
    for (int i = 0; i < 13; ++i) prompt.push_back(2 + (i * 29) % 250);
    const std::vector<int32_t> verified = {10, 20, 30, 40, 50, 60};  // positions 13..18: entries emitted at 15 and 19 boundaries
    for (size_t accepted = 0; accepted < verified.size(); ++accepted) {
      const SequenceId id = 100 + accepted;
      std::vector<float> logits;
      for (Model* m : {&a.model, &b.model}) {
        m->create_sequence(id);
        const StepItem p{id, 0, prompt, LogitsMode::kLast};
        m->forward(std::span<const StepItem>(&p, 1), logits);
      }
      const std::span<const int32_t> kept(verified.data(), accepted + 1);
      // a: save, run all six, roll back, run the kept prefix again.
      a.model.save_for_rollback(id);
      const StepItem all{id, 13, verified, LogitsMode::kAll};
      a.model.forward(std::span<const StepItem>(&all, 1), logits);
      if (accepted + 1 < verified.size())
        EXPECT_NE(a.model.read_state(id), b.model.read_state(id)) << "the verification did not touch the state";
      a.model.roll_back(id);
      EXPECT_EQ(a.model.position(id), 13);
      const StepItem again{id, 13, kept, LogitsMode::kNone};
      a.model.forward(std::span<const StepItem>(&again, 1), logits);
      // b: only the kept prefix.
      b.model.forward(std::span<const StepItem>(&again, 1), logits);
      const std::vector<float> sa = a.model.read_state(id), sb = b.model.read_state(id);
      ASSERT_EQ(sa.size(), sb.size());
      EXPECT_EQ(std::memcmp(sa.data(), sb.data(), sa.size() * sizeof(float)), 0)
          << output_layout_name(layout) << ": " << accepted << " accepted";
      // And the next step's logits agree bit for bit.
      const int32_t next = 7;
      std::vector<float> la, lb;
      const StepItem n{id, 13 + static_cast<int64_t>(kept.size()), std::span<const int32_t>(&next, 1), LogitsMode::kLast};
      a.model.forward(std::span<const StepItem>(&n, 1), la);
      b.model.forward(std::span<const StepItem>(&n, 1), lb);
      EXPECT_EQ(la, lb);
    }
  }
}

TEST(Rollback, WithoutASaveIsAnError) {
  const ModelConfig config = testing::tiny_config({0, 4}, 1, 0);
  const Checkpoint ckpt = testing::random_checkpoint(config, OutputLayout::kBF16, 5);
  testing::CpuModel m(ckpt);
  m.model.create_sequence(1);
  EXPECT_THROW(m.model.roll_back(1), Error);
}

}  // namespace
}  // namespace fp4serve
