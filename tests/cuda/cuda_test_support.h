// Shared pieces of the GPU parity tests: device arrays, NaN-poisoned outputs, random
// bf16-valued inputs, and comparisons whose tolerances say what they allow and why.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "formats/number_formats.h"
#include "backend/cuda/gpu_context.h"
#include "backend/cuda_probe.h"

namespace fp4serve::cuda_testing {

// Every GPU test starts with this: skipped, and reported as skipped, without a GPU.
#define FP4SERVE_REQUIRE_GPU() \
  if (::fp4serve::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device visible: GPU parity not checked"

template <typename T>
cuda::DeviceBuffer to_device(const std::vector<T>& v) {
  cuda::DeviceBuffer b(v.size() * sizeof(T) + 4);  // +4: never a zero-byte (null) buffer
  if (!v.empty()) b.upload(v.data(), v.size() * sizeof(T));
  return b;
}

template <typename T>
std::vector<T> from_device(const cuda::DeviceBuffer& b, size_t count) {
  cuda::check_cuda(cudaDeviceSynchronize(), "test synchronize");
  std::vector<T> v(count);
  if (count) b.download(v.data(), count * sizeof(T));
  return v;
}

// An output buffer of `count` floats filled with NaN: an element a kernel fails to write
// can never pass a comparison.
inline cuda::DeviceBuffer poisoned(size_t count) {
  cuda::DeviceBuffer b(count * sizeof(float) + 4);
  cuda::check_cuda(cudaMemset(b.data(), 0xFF, b.bytes()), "poison");
  return b;
}

inline std::vector<float> random_bf16(std::mt19937& rng, size_t n, float sigma = 1.0f) {
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = round_bf16(normal(rng));
  return v;
}

inline std::vector<float> random_f32(std::mt19937& rng, size_t n, float sigma = 1.0f) {
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// got vs want element by element: |got - want| <= rel * |want| + abs_tol, no non-finite
// value where want is finite, and at least `min_exact` of the elements bit-identical.
inline void expect_close(const std::vector<float>& got, const std::vector<float>& want, double rel, double abs_tol,
                         double min_exact, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t exact = 0, bad = 0, first_bad = 0;
  double worst = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(float)) == 0) {
      ++exact;
      continue;
    }
    const double d = std::fabs(static_cast<double>(got[i]) - want[i]);
    const double allowed = rel * std::fabs(want[i]) + abs_tol;
    if (!(d <= allowed)) {
      if (bad++ == 0) first_bad = i;
    }
    if (std::isfinite(d)) worst = std::max(worst, d / allowed);
  }
  const double exact_fraction = got.empty() ? 1.0 : static_cast<double>(exact) / static_cast<double>(got.size());
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size() << " outside tolerance; first at " << first_bad
                     << " got " << got[first_bad] << " want " << want[first_bad];
  EXPECT_GE(exact_fraction, min_exact) << what << ": only " << exact << " of " << got.size() << " bit-identical";
  std::printf("  %-52s %zu values, %.4f bit-identical, worst %.2f of tolerance\n", what.c_str(), got.size(),
              exact_fraction, worst);
}

// bf16 values: both sides round the same fp32 quantity, computed with sums in another
// order (a few fp32 ulps apart), so a result differs only where that quantity sits
// within those ulps of a bf16 rounding boundary, and then by one bf16 step (2^-7
// relative at most, 2^-8 typically); abs_tol covers values that cancel to near zero.
inline void expect_bf16_close(const std::vector<float>& got, const std::vector<float>& want, double abs_tol,
                              const std::string& what, double min_exact = 0.98) {
  expect_close(got, want, 0x1p-7, abs_tol, min_exact, what);
}

// Runs the fp4serve binary (FP4SERVE_BIN, else the build's) with `args`; its stdout and
// stderr go to `output`; returns the exit status.
inline int run_cli(const std::string& args, std::string* output) {
  const char* bin = std::getenv("FP4SERVE_BIN");
  const std::string cmd = std::string(bin ? bin : FP4SERVE_BINARY_DIR "/bin/fp4serve") + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  while (p && fgets(buf, sizeof buf, p)) *output += buf;
  return p ? pclose(p) : -1;
}

}  // namespace fp4serve::cuda_testing
