// The linear op against float64 dot products of independently decoded weights, for
// every encoding, every SIMD level this processor runs, row ranges and grouped jobs.
#include "backend/cpu/linear.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "base/error.h"
#include "backend/cpu/cpu_isa.h"
#include "formats/number_formats.h"
#include "test_weights.h"

namespace fp4serve::cpu {
namespace {

using testing::make_test_weight;

class IsaScope {
 public:
  explicit IsaScope(CpuIsa isa) : saved_(active_isa()) { set_cpu_isa(isa); }
  ~IsaScope() { set_cpu_isa(saved_); }

 private:
  CpuIsa saved_;
};

// bf16_values: round to bf16, as every activation of the model is (the faster FP8
// kernel of the AVX512-BF16 level only runs on such inputs).
std::vector<float> random_activations(int64_t rows, int64_t K, uint32_t seed, bool bf16_values = false) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows * K));
  for (auto& v : x) v = bf16_values ? round_bf16(normal(rng)) : normal(rng);
  return x;
}

// Relative error of y against the float64 reference, per output, normalized by the
// reference magnitude sum |w||x| (the fp32 summation error bound scale).
void expect_close(const std::vector<double>& w, const std::vector<float>& x, const std::vector<float>& y, int64_t rows,
                  int64_t K, int64_t row_begin, int64_t row_end, const char* what) {
  const int64_t width = row_end - row_begin;
  for (int64_t m = 0; m < rows; ++m)
    for (int64_t n = row_begin; n < row_end; ++n) {
      double ref = 0, mag = 0;
      for (int64_t k = 0; k < K; ++k) {
        ref += w[n * K + k] * x[m * K + k];
        mag += std::fabs(w[n * K + k] * x[m * K + k]);
      }
      const double got = y[m * width + (n - row_begin)];
      ASSERT_LE(std::fabs(got - ref), 1e-5 * mag + 1e-30) << what << " row " << m << " out " << n;
    }
}

TEST(Linear, EveryEncodingEveryIsaMatchesFloat64) {
  const WeightEncoding encodings[] = {WeightEncoding::kBF16, WeightEncoding::kF16, WeightEncoding::kF32,
                                      WeightEncoding::kFP8Block, WeightEncoding::kMXFP4, WeightEncoding::kNVFP4};
  for (CpuIsa isa : supported_isas()) {
    IsaScope scope(isa);
    for (WeightEncoding enc : encodings) {
      for (auto [N, K, rows, bf16] : {std::tuple<int64_t, int64_t, int64_t, bool>{130, 384, 1, false}, {130, 384, 1, true},
                                      {37, 544, 5, false}, {256, 1024, 2, true}, {64, 1024, 1, true}}) {
        auto tw = make_test_weight(enc, N, K, static_cast<uint32_t>(N * 7 + K));
        auto x = random_activations(rows, K, 99, bf16);
        std::vector<float> y(static_cast<size_t>(rows * N), NAN);
        LinearJob job{&tw.weight, x.data(), 0, rows, y.data()};
        linear(job);
        const std::string what = std::string(isa_name(isa)) + " encoding " + std::to_string(static_cast<int>(enc));
        expect_close(tw.values, x, y, rows, K, 0, N, what.c_str());
      }
    }
  }
}

// Prefill's tile kernels decode a weight row once for up to kMaxDotRows activation
// rows, and a call covers its rows in blocks of 64: every row must still come out bit
// for bit as when it runs alone (decode = prefill), for every level and encoding, with
// and without FP8 activation quantization, bf16-valued or not. 70 rows: full tiles, a
// partial tile and a second block. Two jobs read the same rows (one shared input).
TEST(Linear, ManyRowsEqualOneRowAtATime) {
  const WeightEncoding encodings[] = {WeightEncoding::kBF16, WeightEncoding::kF16, WeightEncoding::kF32,
                                      WeightEncoding::kFP8Block, WeightEncoding::kMXFP4, WeightEncoding::kNVFP4};
  const int64_t N = 40, K = 384, rows = 70;
  for (CpuIsa isa : supported_isas()) {
    IsaScope scope(isa);
    for (WeightEncoding enc : encodings) {
      for (bool bf16 : {false, true}) {
        for (ActivationQuant act : {ActivationQuant::kNone, ActivationQuant::kFP8Block128}) {
          auto tw = make_test_weight(enc, N, K, 17);
          auto x = random_activations(rows, K, 23, bf16);
          std::vector<float> all(static_cast<size_t>(rows * N), NAN), twin(all.size(), NAN), one(all.size(), NAN);
          LinearJob job{&tw.weight, x.data(), 0, rows, all.data()};
          job.act = act;
          LinearJob second = job;
          second.y = twin.data();
          const LinearJob both[] = {job, second};
          linear(both);
          for (int64_t m = 0; m < rows; ++m) {
            LinearJob single = job;
            single.x = x.data() + m * K;
            single.rows = 1;
            single.y = one.data() + m * N;
            linear(single);
          }
          const std::string what = std::string(isa_name(isa)) + " encoding " + std::to_string(static_cast<int>(enc)) +
                                   (bf16 ? " bf16" : " fp32") + (act == ActivationQuant::kNone ? "" : " fp8-act");
          for (size_t i = 0; i < all.size(); ++i) {
            ASSERT_TRUE(std::isfinite(one[i])) << what;
            ASSERT_EQ(all[i], one[i]) << what << " row " << i / N << " out " << i % N;
            ASSERT_EQ(twin[i], one[i]) << what << " (second job) row " << i / N << " out " << i % N;
          }
        }
      }
    }
  }
}

// MXFP4 blocks whose E8M0 scale leaves the bf16 exponent range once added to an E2M1
// value (k < 2 or k > 252) cannot go through the bf16 tables: their groups take a
// scalar path. Against float64, and every row as when alone, on every level.
TEST(Linear, Mxfp4ScalesAtTheEdgesOfTheRange) {
  const int64_t N = 6, K = 512, rows = 5;
  for (CpuIsa isa : supported_isas()) {
    IsaScope scope(isa);
    auto tw = make_test_weight(WeightEncoding::kMXFP4, N, K, 5);
    auto* scales = reinterpret_cast<uint8_t*>(mutable_data(tw.weight.scale));
    auto* codes = reinterpret_cast<uint8_t*>(mutable_data(tw.weight.weight));
    // Row 0: one block at k = 1, one at 0; row 1: one block at 253 (its codes kept to
    // magnitudes <= 3, so that every weight is finite in fp32); row 2: at 2 and 252 (in range).
    const std::pair<int64_t, uint8_t> edits[] = {{0 * 16 + 5, 1}, {0 * 16 + 9, 0}, {1 * 16 + 14, 253}, {2 * 16 + 3, 2}, {2 * 16 + 12, 252}};
    for (auto [at, e] : edits) {
      scales[at] = e;
      const int64_t n = at / 16, b = at % 16;
      if (e == 253)
        for (int64_t j = 0; j < 16; ++j) codes[n * K / 2 + b * 16 + j] &= 0xDD;  // E2M1 magnitudes 0, 0.5, 2, 3
      for (int64_t k = b * 32; k < b * 32 + 32; ++k) {
        const uint8_t byte = codes[n * K / 2 + k / 2];
        tw.values[static_cast<size_t>(n * K + k)] = testing::ref_e2m1(k % 2 ? byte >> 4 : byte & 0xF) * testing::ref_e8m0(e);
      }
    }
    auto x = random_activations(rows, K, 41, true);
    for (float& v : x) v *= 0x1p-8f;  // keeps 6 * 2^126 * x finite in fp32
    std::vector<float> y(static_cast<size_t>(rows * N), NAN), one(static_cast<size_t>(N), NAN);
    LinearJob job{&tw.weight, x.data(), 0, rows, y.data()};
    linear(job);
    const std::string what = std::string(isa_name(isa)) + " MXFP4 edge scales";
    expect_close(tw.values, x, y, rows, K, 0, N, what.c_str());
    for (int64_t m = 0; m < rows; ++m) {
      LinearJob single{&tw.weight, x.data() + m * K, 0, 1, one.data()};
      linear(single);
      for (int64_t n = 0; n < N; ++n) ASSERT_EQ(y[static_cast<size_t>(m * N + n)], one[static_cast<size_t>(n)]) << what << " row " << m;
    }
  }
}

TEST(Linear, RowRangeAndGroupedJobs) {
  auto a = make_test_weight(WeightEncoding::kFP8Block, 256, 256, 1);
  auto b = make_test_weight(WeightEncoding::kMXFP4, 64, 256, 2);
  auto x = random_activations(3, 256, 5);
  std::vector<float> ya(3 * 100, NAN), yb(3 * 64, NAN);
  const LinearJob jobs[] = {{&a.weight, x.data(), 0, 3, ya.data(), 0, 120, 220}, {&b.weight, x.data(), 0, 3, yb.data()}};
  linear(jobs);
  expect_close(a.values, x, ya, 3, 256, 120, 220, "fp8 rows 120-220");
  expect_close(b.values, x, yb, 3, 256, 0, 64, "mxfp4");
}

TEST(Linear, Fp8ActivationQuantizationUsesQuantizedInputs) {
  // With kFP8Block128 the op must equal the float64 product with activations rounded to
  // e4m3 under their per-128 power-of-two scales (computed here from the definition).
  auto tw = make_test_weight(WeightEncoding::kFP8Block, 16, 256, 3);
  auto x = random_activations(2, 256, 6);
  std::vector<float> xq(x.size());
  for (size_t b = 0; b < x.size(); b += 128) {
    double amax = 1e-4;
    for (size_t i = b; i < b + 128; ++i) amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
    const double s = std::ldexp(1.0, static_cast<int>(std::ceil(std::log2(amax / 448.0))));
    for (size_t i = b; i < b + 128; ++i) {
      // nearest of all 254 finite e4m3 values, ties to the even code
      double best = 0, best_err = INFINITY;
      int best_code = 0;
      for (int c = 0; c < 256; ++c) {
        if ((c & 0x7F) == 0x7F) continue;
        const double v = testing::ref_e4m3(static_cast<uint8_t>(c));
        const double err = std::fabs(v - x[i] / s);
        if (err < best_err || (err == best_err && (c & 1) == 0 && (best_code & 1) == 1)) best = v, best_err = err, best_code = c;
      }
      xq[i] = static_cast<float>(best * s);
    }
  }
  std::vector<float> y(2 * 16);
  linear(LinearJob{&tw.weight, x.data(), 0, 2, y.data(), 0, 0, -1, ActivationQuant::kFP8Block128});
  expect_close(tw.values, xq, y, 2, 256, 0, 16, "fp8 activations");
}

TEST(Linear, BadShapesAreErrorsNamingTheWeight) {
  auto tw = make_test_weight(WeightEncoding::kMXFP4, 8, 64, 4);
  tw.weight.scale.shape = {8, 3};
  std::vector<float> x(64), y(8);
  try {
    linear(LinearJob{&tw.weight, x.data(), 0, 1, y.data()});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("test.weight"), std::string::npos) << e.what();
  }
  auto f = make_test_weight(WeightEncoding::kBF16, 8, 64, 5);
  EXPECT_THROW(linear(LinearJob{&f.weight, x.data(), 0, 1, y.data(), 0, 0, -1, ActivationQuant::kFP8Block128}), Error);
  EXPECT_THROW(linear(LinearJob{&f.weight, x.data(), 0, 1, y.data(), 0, 4, 9}), Error);
}

}  // namespace
}  // namespace fp4serve::cpu
