// One model, many ways to feed it: a whole prefill, token-by-token decode, chunked
// prefill from arbitrary positions, and a batch of two sequences must give the same
// logits as each other (the same per-row arithmetic, so bit-identical here).
#include <gtest/gtest.h>

#include <cmath>

#include "base/error.h"
#include "model/model.h"
#include "random_checkpoint.h"

namespace fp4serve {
namespace {

using testing::RandomEncoding;

std::vector<int32_t> test_tokens(int n, int seed) {
  std::vector<int32_t> t;
  uint32_t s = static_cast<uint32_t>(seed);
  for (int i = 0; i < n; ++i) t.push_back(static_cast<int32_t>((s = s * 1103515245u + 12345u) >> 16) % 256);
  return t;
}

std::vector<float> run_chunks(Model& model, const std::vector<int32_t>& tokens, const std::vector<int>& chunks) {
  auto seq = model.new_sequence();
  std::vector<float> logits;
  size_t at = 0;
  for (int n : chunks) {
    SequenceInput in{seq.get(), std::span<const int32_t>(tokens.data() + at, static_cast<size_t>(n)), true};
    model.forward(std::span<const SequenceInput>(&in, 1), logits);
    at += static_cast<size_t>(n);
  }
  EXPECT_EQ(at, tokens.size());
  EXPECT_EQ(seq->position(), static_cast<int64_t>(tokens.size()));
  return logits;
}

class Consistency : public ::testing::TestWithParam<RandomEncoding> {};

TEST_P(Consistency, PrefillDecodeChunkedAndBatchAgree) {
  // Flash-like pattern with scaled-down ratios: SWA, CSA, HCA (8), CSA; window 8, top-3.
  const ModelConfig config = testing::tiny_config({0, 4, 8, 4}, 2, 0);
  const Checkpoint ckpt = testing::random_checkpoint(config, GetParam(), 7);
  Model model(ckpt);
  const int n = 37;
  const auto tokens = test_tokens(n, 3);
  const auto prefill = run_chunks(model, tokens, {n});
  ASSERT_EQ(prefill.size(), static_cast<size_t>(n * config.vocab_size));
  for (float v : prefill) ASSERT_TRUE(std::isfinite(v));

  const auto decode = run_chunks(model, tokens, std::vector<int>(n, 1));
  const auto chunked = run_chunks(model, tokens, {5, 11, 1, 3, 17});
  EXPECT_EQ(decode, prefill);
  EXPECT_EQ(chunked, prefill);

  // Batch of two different sequences at different positions equals two singles.
  const auto other = test_tokens(20, 11);
  const auto single_other = run_chunks(model, other, {9, 11});
  auto a = model.new_sequence();
  auto b = model.new_sequence();
  std::vector<float> first;
  {
    SequenceInput ins[] = {{a.get(), std::span<const int32_t>(tokens.data(), 16), true},
                           {b.get(), std::span<const int32_t>(other.data(), 9), true}};
    model.forward(ins, first);
  }
  std::vector<float> second;
  {
    SequenceInput ins[] = {{b.get(), std::span<const int32_t>(other.data() + 9, 11), true},
                           {a.get(), std::span<const int32_t>(tokens.data() + 16, 21), false}};
    model.forward(ins, second);
  }
  const int64_t V = config.vocab_size;
  for (int64_t i = 0; i < 16 * V; ++i) ASSERT_EQ(first[i], prefill[i]) << i;
  for (int64_t i = 0; i < 9 * V; ++i) ASSERT_EQ(first[16 * V + i], single_other[i]) << i;
  for (int64_t i = 0; i < 11 * V; ++i) ASSERT_EQ(second[i], single_other[9 * V + i]) << i;
  for (int64_t i = 0; i < V; ++i) ASSERT_EQ(second[11 * V + i], prefill[(n - 1) * V + i]) << i;
}

INSTANTIATE_TEST_SUITE_P(Encodings, Consistency,
                         ::testing::Values(RandomEncoding::kBF16, RandomEncoding::kNative, RandomEncoding::kNVFP4));

TEST(Consistency, ProLikePatternAndMtpBlock) {
  const ModelConfig config = testing::tiny_config({16, 16, 4, 16}, 3, 1);
  const Checkpoint ckpt = testing::random_checkpoint(config, RandomEncoding::kNative, 9);
  Model model(ckpt);
  const auto tokens = test_tokens(40, 5);
  const auto prefill = run_chunks(model, tokens, {40});
  const auto decode = run_chunks(model, tokens, std::vector<int>(40, 1));
  EXPECT_EQ(decode, prefill);

  // MTP: streams of positions 0..n-2 with next tokens 1..n-1, all at once or one at a time.
  auto seq = model.new_sequence();
  std::vector<float> logits, streams;
  SequenceInput in{seq.get(), tokens, true};
  model.forward(std::span<const SequenceInput>(&in, 1), logits, &streams);
  const int64_t width = config.hc_mult * config.hidden_size;
  std::vector<float> mtp_all;
  MtpInput all{seq.get(), std::span<const int32_t>(tokens.data() + 1, 39), streams.data(), true};
  model.forward_mtp(std::span<const MtpInput>(&all, 1), mtp_all);
  ASSERT_EQ(mtp_all.size(), static_cast<size_t>(39 * config.vocab_size));
  for (float v : mtp_all) ASSERT_TRUE(std::isfinite(v));
  auto seq2 = model.new_sequence();
  std::vector<float> discard, mtp_steps;
  model.forward(std::span<const SequenceInput>(&in, 1), discard);
  SequenceInput in2{seq2.get(), tokens, true};
  model.forward(std::span<const SequenceInput>(&in2, 1), discard);
  for (int i = 0; i < 39; ++i) {
    MtpInput one{seq2.get(), std::span<const int32_t>(tokens.data() + 1 + i, 1), streams.data() + i * width, false};
    model.forward_mtp(std::span<const MtpInput>(&one, 1), mtp_steps);
  }
  EXPECT_EQ(mtp_steps, mtp_all);
}

TEST(Consistency, BadInputsAreErrors) {
  const ModelConfig config = testing::tiny_config({0, 4}, 1, 0);
  Checkpoint ckpt = testing::random_checkpoint(config, RandomEncoding::kBF16, 1);
  Model model(ckpt);
  auto seq = model.new_sequence();
  std::vector<float> logits;
  const int32_t bad[] = {3, 256};
  SequenceInput in{seq.get(), bad, false};
  EXPECT_THROW(model.forward(std::span<const SequenceInput>(&in, 1), logits), Error);
  EXPECT_THROW(model.forward_mtp({}, logits), Error);
  ckpt.linears.erase("layers.1.attn.indexer.wq_b");
  try {
    Model broken(ckpt);
    FAIL() << "no error for a missing projection";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layers.1.attn.indexer.wq_b"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace fp4serve
