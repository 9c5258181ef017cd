// MoeParams::absent (expert parallelism): an expert marked absent adds exactly 0 to every
// token that selected it, whatever its weights, so the CPU may skip it. The reference here is
// the same op with those experts replaced by all-zero weights and no marks (which adds 0 by
// arithmetic): the two must agree bit for bit, and differ from the op with the real experts.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "formats/number_formats.h"
#include "test_weights.h"

namespace fp4serve {
namespace {

LinearWeight zeros_like(const LinearWeight& w) {
  LinearWeight z = w;
  z.weight = make_owned_tensor(w.weight.dtype, w.weight.shape);
  z.scale = make_owned_tensor(w.scale.dtype, w.scale.shape);
  return z;
}

TEST(MoeAbsentExperts, MarkedExpertsAddExactlyZero) {
  constexpr int64_t D = 256, I = 128, E = 4, k = 2, rows = 9;
  std::vector<testing::TestWeight> w1, w2, w3;
  for (int64_t e = 0; e < E; ++e) {
    w1.push_back(testing::make_test_weight(WeightEncoding::kMXFP4, I, D, uint32_t(10 + e)));
    w2.push_back(testing::make_test_weight(WeightEncoding::kMXFP4, D, I, uint32_t(20 + e)));
    w3.push_back(testing::make_test_weight(WeightEncoding::kMXFP4, I, D, uint32_t(30 + e)));
  }
  const testing::TestWeight gate = testing::make_test_weight(WeightEncoding::kBF16, E, D, 40);
  const testing::TestWeight s1 = testing::make_test_weight(WeightEncoding::kMXFP4, I, D, 41);
  const testing::TestWeight s2 = testing::make_test_weight(WeightEncoding::kMXFP4, D, I, 42);
  const testing::TestWeight s3 = testing::make_test_weight(WeightEncoding::kMXFP4, I, D, 43);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows * D)), bias(static_cast<size_t>(E), 0.0f);
  for (float& v : x) v = round_bf16(normal(rng));

  // Experts 1 and 3 are another rank's.
  const std::vector<uint8_t> marks = {0, 1, 0, 1};
  std::vector<LinearWeight> zero1, zero2, zero3;
  for (int64_t e = 0; e < E; ++e) {
    zero1.push_back(zeros_like(w1[size_t(e)].weight));
    zero2.push_back(zeros_like(w2[size_t(e)].weight));
    zero3.push_back(zeros_like(w3[size_t(e)].weight));
  }
  std::vector<ExpertLinears> real, zeroed;
  for (size_t e = 0; e < size_t(E); ++e) {
    real.push_back({&w1[e].weight, &w2[e].weight, &w3[e].weight});
    zeroed.push_back(marks[e] ? ExpertLinears{&zero1[e], &zero2[e], &zero3[e]} : real.back());
  }

  const auto backend = make_backend(DeviceKind::kCpu);
  auto run = [&](std::span<const ExpertLinears> routed, std::span<const uint8_t> absent) {
    std::vector<float> out(static_cast<size_t>(rows * D), -1.0f);
    MoeParams p;
    p.rows = rows;
    p.dim = D;
    p.intermediate = I;
    p.experts = E;
    p.experts_per_token = k;
    p.route_scale = 1.5f;
    p.gate = &gate.weight;
    p.bias = bias.data();
    p.routed = routed;
    p.absent = absent;
    p.shared = {&s1.weight, &s2.weight, &s3.weight};
    p.x = x.data();
    p.out = out.data();
    backend->moe(p);
    return out;
  };
  const std::vector<float> marked = run(real, marks), by_zeros = run(zeroed, {}), whole = run(real, {});
  EXPECT_EQ(0, std::memcmp(marked.data(), by_zeros.data(), marked.size() * sizeof(float)));
  EXPECT_NE(marked, whole) << "no token selected a marked expert: the test shows nothing";
}

}  // namespace
}  // namespace fp4serve
