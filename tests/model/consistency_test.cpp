// One model, many ways to feed it: a whole prefill, token-by-token decode, chunked
// prefill from arbitrary positions, and a batch of two sequences must give the same
// logits, bit for bit: every kernel computes a row the same way whatever else shares
// the call, and the stateful walk is token by token in every case.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "backend/cpu/parallel.h"
#include "cpu_model.h"
#include "model/model.h"
#include "model_test_checkpoints.h"

namespace fp4serve {
namespace {

using cpu::parallel_min_cost;
using cpu::set_parallel_min_cost;
using testing::CpuModel;

SequenceId new_id() {
  static SequenceId next = 1000;
  return next++;
}

std::vector<int32_t> test_tokens(int n, int seed) {
  std::vector<int32_t> t;
  uint32_t s = static_cast<uint32_t>(seed);
  for (int i = 0; i < n; ++i) t.push_back(static_cast<int32_t>((s = s * 1103515245u + 12345u) >> 16) % 256);
  return t;
}

// Bit-identical logits ([positions, V] each); on failure, reports how far they drifted.
void expect_same_logits(const std::vector<float>& got, const std::vector<float>& want, int64_t V, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  std::vector<double> rel;
  for (size_t s = 0; s * V < want.size(); ++s) {
    double num = 0, den = 0;
    for (int64_t v = 0; v < V; ++v) {
      const double g = got[s * V + v], w = want[s * V + v];
      ASSERT_TRUE(std::isfinite(g)) << what;
      num += (g - w) * (g - w);
      den += w * w;
    }
    rel.push_back(std::sqrt(num / den));
  }
  std::sort(rel.begin(), rel.end());
  EXPECT_EQ(got, want) << what << ": median relative L2 " << rel[rel.size() / 2] << ", max " << rel.back();
}

std::vector<float> slice(const std::vector<float>& v, int64_t from, int64_t count, int64_t V) {
  return std::vector<float>(v.begin() + from * V, v.begin() + (from + count) * V);
}

std::vector<float> run_chunks(Model& model, const std::vector<int32_t>& tokens, const std::vector<int>& chunks) {
  const SequenceId seq = new_id();
  model.create_sequence(seq);
  std::vector<float> logits;
  size_t at = 0;
  for (int n : chunks) {
    const StepItem in{seq, static_cast<int64_t>(at), std::span<const int32_t>(tokens.data() + at, static_cast<size_t>(n)),
                      LogitsMode::kAll};
    model.forward(std::span<const StepItem>(&in, 1), logits);
    at += static_cast<size_t>(n);
  }
  EXPECT_EQ(at, tokens.size());
  EXPECT_EQ(model.position(seq), static_cast<int64_t>(tokens.size()));
  model.free_sequence(seq);
  return logits;
}

class Consistency : public ::testing::TestWithParam<OutputLayout> {};

TEST_P(Consistency, PrefillDecodeChunkedAndBatchAgree) {
  // Flash-like pattern with scaled-down ratios: SWA, CSA, HCA (8), CSA; window 8, top-3.
  const ModelConfig config = testing::tiny_config({0, 4, 8, 4}, 2, 0);
  const Checkpoint ckpt = testing::random_checkpoint(config, GetParam(), 7);
  CpuModel m(ckpt);
  Model& model = m.model;
  const int n = 37;
  const auto tokens = test_tokens(n, 3);
  const auto prefill = run_chunks(model, tokens, {n});
  ASSERT_EQ(prefill.size(), static_cast<size_t>(n * config.vocab_size));
  for (float v : prefill) ASSERT_TRUE(std::isfinite(v));

  const int64_t V = config.vocab_size;
  expect_same_logits(run_chunks(model, tokens, std::vector<int>(n, 1)), prefill, V, "decode");
  expect_same_logits(run_chunks(model, tokens, {5, 11, 1, 3, 17}), prefill, V, "chunked");

  // Batch of two different sequences at different positions equals two singles.
  const auto other = test_tokens(20, 11);
  const auto single_other = run_chunks(model, other, {9, 11});
  const SequenceId a = new_id(), b = new_id();
  model.create_sequence(a);
  model.create_sequence(b);
  std::vector<float> first;
  {
    const StepItem ins[] = {{a, 0, std::span<const int32_t>(tokens.data(), 16), LogitsMode::kAll},
                            {b, 0, std::span<const int32_t>(other.data(), 9), LogitsMode::kAll}};
    model.forward(ins, first);
  }
  std::vector<float> second;
  {
    const StepItem ins[] = {{b, 9, std::span<const int32_t>(other.data() + 9, 11), LogitsMode::kAll},
                            {a, 16, std::span<const int32_t>(tokens.data() + 16, 21), LogitsMode::kLast}};
    model.forward(ins, second);
  }
  expect_same_logits(slice(first, 0, 16, V), slice(prefill, 0, 16, V), V, "batch, sequence a");
  expect_same_logits(slice(first, 16, 9, V), slice(single_other, 0, 9, V), V, "batch, sequence b");
  expect_same_logits(slice(second, 0, 11, V), slice(single_other, 9, 11, V), V, "batch, sequence b continued");
  expect_same_logits(slice(second, 11, 1, V), slice(prefill, n - 1, 1, V), V, "batch, sequence a last position");
}

// The tiny model's loops are below the size at which they go parallel; forced onto the
// pool (every head, column block, entry and feature block a unit of work), prefill and
// decode must give the same logits as on one thread.
TEST_P(Consistency, LoopsOnThePoolAgreeWithOneThread) {
  const ModelConfig config = testing::tiny_config({0, 4, 8, 4}, 2, 0);
  const Checkpoint ckpt = testing::random_checkpoint(config, GetParam(), 7);
  CpuModel m(ckpt);
  Model& model = m.model;
  const int n = 37;
  const auto tokens = test_tokens(n, 3);
  const auto serial = run_chunks(model, tokens, {n});
  const int64_t saved = parallel_min_cost();
  set_parallel_min_cost(0);
  const auto pooled_prefill = run_chunks(model, tokens, {n});
  const auto pooled_decode = run_chunks(model, tokens, std::vector<int>(n, 1));
  set_parallel_min_cost(saved);
  expect_same_logits(pooled_prefill, serial, config.vocab_size, "prefill on the pool");
  expect_same_logits(pooled_decode, serial, config.vocab_size, "decode on the pool");
}

INSTANTIATE_TEST_SUITE_P(Encodings, Consistency,
                         ::testing::Values(OutputLayout::kBF16, OutputLayout::kNative, OutputLayout::kNvfp4));

TEST(Consistency, ProLikePatternAndMtpBlock) {
  const ModelConfig config = testing::tiny_config({16, 16, 4, 16}, 3, 1);
  const Checkpoint ckpt = testing::random_checkpoint(config, OutputLayout::kNative, 9);
  CpuModel m(ckpt);
  Model& model = m.model;
  const auto tokens = test_tokens(40, 5);
  const auto prefill = run_chunks(model, tokens, {40});
  expect_same_logits(run_chunks(model, tokens, std::vector<int>(40, 1)), prefill, config.vocab_size, "decode");

  // MTP: streams of positions 0..n-2 with next tokens 1..n-1, all at once or one at a time.
  const SequenceId seq = new_id();
  model.create_sequence(seq);
  std::vector<float> logits, streams;
  const StepItem in{seq, 0, tokens, LogitsMode::kAll};
  model.forward(std::span<const StepItem>(&in, 1), logits, &streams);
  const int64_t width = config.hc_mult * config.hidden_size;
  std::vector<float> mtp_all;
  const MtpItem all{seq, std::span<const int32_t>(tokens.data() + 1, 39), streams.data(), LogitsMode::kAll};
  model.forward_mtp(std::span<const MtpItem>(&all, 1), mtp_all);
  ASSERT_EQ(mtp_all.size(), static_cast<size_t>(39 * config.vocab_size));
  for (float v : mtp_all) ASSERT_TRUE(std::isfinite(v));
  const SequenceId seq2 = new_id();
  model.create_sequence(seq2);
  std::vector<float> discard, mtp_steps;
  const StepItem in2{seq2, 0, tokens, LogitsMode::kAll};
  model.forward(std::span<const StepItem>(&in2, 1), discard);
  for (int i = 0; i < 39; ++i) {
    const MtpItem one{seq2, std::span<const int32_t>(tokens.data() + 1 + i, 1), streams.data() + i * width, LogitsMode::kLast};
    model.forward_mtp(std::span<const MtpItem>(&one, 1), mtp_steps);
  }
  expect_same_logits(mtp_steps, mtp_all, config.vocab_size, "MTP one at a time");
}

TEST(Consistency, IndexerRopingEveryDim) {
  // index_head_dim == qk_rope_head_dim, which DeepSeek's reference and transformers both run: the
  // indexer's queries and compressed keys are roped over all their dims (no un-roped part).
  ModelConfig config = testing::tiny_config({0, 4, 8, 4}, 2, 0);
  config.index_head_dim = config.rope_head_dim;
  const Checkpoint ckpt = testing::random_checkpoint(config, OutputLayout::kNative, 3);
  CpuModel m(ckpt);
  Model& model = m.model;
  const int n = 29;
  const auto tokens = test_tokens(n, 7);
  const auto prefill = run_chunks(model, tokens, {n});
  for (float v : prefill) ASSERT_TRUE(std::isfinite(v));
  expect_same_logits(run_chunks(model, tokens, std::vector<int>(n, 1)), prefill, config.vocab_size, "decode");
  expect_same_logits(run_chunks(model, tokens, {4, 13, 12}), prefill, config.vocab_size, "chunked");
}

TEST(Consistency, BadInputsAreErrors) {
  const ModelConfig config = testing::tiny_config({0, 4}, 1, 0);
  Checkpoint ckpt = testing::random_checkpoint(config, OutputLayout::kBF16, 1);
  CpuModel m(ckpt);
  Model& model = m.model;
  const SequenceId seq = new_id();
  model.create_sequence(seq);
  std::vector<float> logits;
  const int32_t bad[] = {3, 256};
  const StepItem in{seq, 0, bad, LogitsMode::kLast};
  EXPECT_THROW(model.forward(std::span<const StepItem>(&in, 1), logits), Error);
  EXPECT_EQ(model.position(seq), 0) << "a refused step moved the sequence";
  EXPECT_THROW(model.forward_mtp({}, logits), Error);
  const int32_t good[] = {3};
  const StepItem wrong_position{seq, 1, good, LogitsMode::kLast};
  EXPECT_THROW(model.forward(std::span<const StepItem>(&wrong_position, 1), logits), Error);
  const StepItem twice[] = {{seq, 0, good, LogitsMode::kLast}, {seq, 0, good, LogitsMode::kLast}};
  EXPECT_THROW(model.forward(twice, logits), Error);
  const StepItem unknown{seq + 1, 0, good, LogitsMode::kLast};
  EXPECT_THROW(model.forward(std::span<const StepItem>(&unknown, 1), logits), Error);
  ckpt.linears.erase("layers.1.attn.indexer.wq_b");
  try {
    CpuModel broken(ckpt);
    FAIL() << "no error for a missing projection";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layers.1.attn.indexer.wq_b"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace fp4serve
