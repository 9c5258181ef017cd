// Header-only (test folders compile only *_test.cpp files).
// What the sharded-forward tests (tests/parallel, tests/cuda) and the CUDA model parity test
// run and how they compare: a fixed script of two sequences (a batched prefill with every
// position's logits, then decode steps), the per-position agreement (relative L2 error,
// top-1), and a one-rank model whose joins are nudged by one bf16 step (how far differences
// of rounding size carry to a model's logits).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <span>
#include <vector>

#include "formats/number_formats.h"
#include "model/rank_collectives.h"
#include "model/step_item.h"

namespace fp4serve::testing {

struct Runner {
  std::function<void(SequenceId)> create;
  std::function<void(std::span<const StepItem>, std::vector<float>&)> forward;
};

// Two sequences: one batched prefill (every position's logits; 24 and 7 tokens), then six
// decode steps of one token each for both. Tokens are fixed, inside every test vocabulary.
inline std::vector<float> run_script(const Runner& model, int64_t vocab) {
  auto token = [&](int i) { return static_cast<int32_t>(3 + (i * 37) % (vocab - 3)); };
  std::vector<int32_t> a, b;
  for (int i = 0; i < 24; ++i) a.push_back(token(i));
  for (int i = 0; i < 7; ++i) b.push_back(token(100 + i));
  model.create(1);
  model.create(2);
  std::vector<float> logits;
  const StepItem prefill[] = {{1, 0, a, LogitsMode::kAll}, {2, 0, b, LogitsMode::kAll}};
  model.forward(prefill, logits);
  for (int step = 0; step < 6; ++step) {
    const int32_t ta = token(200 + step), tb = token(300 + step);
    const StepItem decode[] = {{1, 24 + step, std::span<const int32_t>(&ta, 1), LogitsMode::kLast},
                               {2, 7 + step, std::span<const int32_t>(&tb, 1), LogitsMode::kLast}};
    model.forward(decode, logits);
  }
  return logits;
}

struct Agreement {
  double median_rel = 0, max_rel = 0, top1 = 0;
};

inline Agreement compare(const std::vector<float>& whole, const std::vector<float>& split, int64_t vocab) {
  EXPECT_EQ(whole.size(), split.size());
  const size_t positions = whole.size() / static_cast<size_t>(vocab);
  std::vector<double> rel;
  size_t agree = 0;
  for (size_t p = 0; p < positions; ++p) {
    const float* w = whole.data() + p * static_cast<size_t>(vocab);
    const float* s = split.data() + p * static_cast<size_t>(vocab);
    double diff = 0, norm = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      diff += (double(s[v]) - w[v]) * (double(s[v]) - w[v]);
      norm += double(w[v]) * w[v];
    }
    rel.push_back(std::sqrt(diff / std::max(norm, 1e-30)));
    agree += (std::max_element(w, w + vocab) - w) == (std::max_element(s, s + vocab) - s);
  }
  std::sort(rel.begin(), rel.end());
  return {rel[rel.size() / 2], rel.back(), static_cast<double>(agree) / static_cast<double>(positions)};
}

// One rank whose joins move one element in seven by one bf16 step (away from zero) after
// the bf16 rounding: how far differences of that size carry to the logits.
class NudgingCollectives final : public RankCollectives {
 public:
  explicit NudgingCollectives(int64_t vocab) : vocab_(vocab) {}
  void sum_bf16(float* data, int64_t rows, int64_t width) override {
    for (int64_t i = 0; i < rows * width; ++i) {
      const uint16_t bits = encode_bf16(data[i]);
      data[i] = decode_bf16(i % 7 == 0 ? static_cast<uint16_t>(bits + 1) : bits);
    }
  }
  void gather_vocabulary(const float* local, int64_t rows, std::vector<float>& logits) override {
    logits.insert(logits.end(), local, local + rows * vocab_);
  }

 private:
  int64_t vocab_;
};

}  // namespace fp4serve::testing
