// The CPU linear kernels alone, on a shared machine: one grouped call over E random weights
// of [N, K] (default: 12 MXFP4 experts' w1/w3 of V4-Flash, 2048 x 4096, larger than the L3)
// against `rows` bf16-valued activation rows, timed `reps` times. Besides wall time it prints
// the process CPU time, which does not count the time other processes held the core, so A/B
// runs of two builds compare on a busy machine (run with FP4SERVE_THREADS=1 for that).
//   build/bin/cpu_linear_bench --encoding mxfp4|nvfp4|fp8|bf16 [--n 2048 --k 4096 --weights 12 --rows 1 --reps 40]
#include <CLI/CLI.hpp>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/linear.h"
#include "base/tensor.h"
#include "formats/linear_weight.h"
#include "formats/number_formats.h"

using namespace fp4serve;

namespace {

double clock_seconds(clockid_t clock) {
  timespec t{};
  clock_gettime(clock, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

LinearWeight random_weight(const std::string& encoding, int64_t N, int64_t K, std::mt19937& rng) {
  LinearWeight w;
  w.name = "bench." + encoding;
  w.out_features = N;
  w.in_features = K;
  auto fill = [&](TensorView& t, uint8_t lo, uint8_t span, uint8_t avoid_mask) {
    auto* p = reinterpret_cast<uint8_t*>(mutable_data(t));
    for (size_t i = 0; i < t.nbytes; ++i) {
      uint8_t b = static_cast<uint8_t>(lo + (span ? rng() % span : rng()));
      if (avoid_mask && (b & avoid_mask) == avoid_mask) b = 0;  // no E4M3 NaN codes
      p[i] = b;
    }
  };
  if (encoding == "mxfp4") {
    w.encoding = WeightEncoding::kMXFP4;
    w.weight = make_owned_tensor(DType::I8, {N, K / 2});
    w.scale = make_owned_tensor(DType::F8_E8M0, {N, K / 32});
    fill(w.weight, 0, 0, 0);
    fill(w.scale, 118, 8, 0);
  } else if (encoding == "nvfp4") {
    w.encoding = WeightEncoding::kNVFP4;
    w.weight = make_owned_tensor(DType::U8, {N, K / 2});
    w.scale = make_owned_tensor(DType::F8_E4M3, {N, K / 16});
    fill(w.weight, 0, 0, 0);
    fill(w.scale, 0x30, 0x20, 0);  // positive normal E4M3
    w.global_scale = 0.001f;
  } else if (encoding == "fp8") {
    w.encoding = WeightEncoding::kFP8Block;
    w.weight = make_owned_tensor(DType::F8_E4M3, {N, K});
    w.scale = make_owned_tensor(DType::F8_E8M0, {(N + 127) / 128, (K + 127) / 128});
    fill(w.weight, 0, 0, 0x7F);
    fill(w.scale, 118, 8, 0);
  } else if (encoding == "bf16") {
    w.encoding = WeightEncoding::kBF16;
    w.weight = make_owned_tensor(DType::BF16, {N, K});
    auto* p = reinterpret_cast<uint16_t*>(mutable_data(w.weight));
    std::normal_distribution<float> normal;
    for (int64_t i = 0; i < N * K; ++i) p[i] = encode_bf16(normal(rng));
  } else {
    throw CLI::ValidationError("--encoding", "expected mxfp4, nvfp4, fp8 or bf16");
  }
  return w;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CPU linear kernels alone: GB/s of weights, wall and CPU time"};
  std::string encoding = "mxfp4";
  int64_t N = 2048, K = 4096, E = 12, rows = 1, reps = 40;
  app.add_option("--encoding", encoding, "mxfp4, nvfp4, fp8 or bf16")->capture_default_str();
  app.add_option("--n", N, "Output features")->capture_default_str();
  app.add_option("--k", K, "Input features (a multiple of 128)")->capture_default_str();
  app.add_option("--weights", E, "Weights in the grouped call")->capture_default_str();
  app.add_option("--rows", rows, "Activation rows")->capture_default_str();
  app.add_option("--reps", reps, "Timed calls")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::mt19937 rng(1);
  std::vector<LinearWeight> weights;
  size_t bytes = 0;
  for (int64_t e = 0; e < E; ++e) {
    weights.push_back(random_weight(encoding, N, K, rng));
    bytes += weights.back().stored_bytes();
  }
  std::normal_distribution<float> normal;
  std::vector<float> x(static_cast<size_t>(rows * K));
  for (float& v : x) v = round_bf16(normal(rng));
  std::vector<float> y(static_cast<size_t>(rows * N * E));
  std::vector<LinearJob> jobs;
  for (int64_t e = 0; e < E; ++e) {
    LinearJob j = linear_job(&weights[static_cast<size_t>(e)], x.data(), rows, y.data() + e * rows * N,
                             encoding == "bf16" || encoding == "nvfp4" ? ActivationQuant::kNone : ActivationQuant::kFP8Block128, true);
    jobs.push_back(j);
  }
  cpu::linear(jobs);  // warm-up: scratch buffers, page-in
  std::vector<double> cpu_s, wall_s;
  for (int64_t r = 0; r < reps; ++r) {
    const double c0 = clock_seconds(CLOCK_PROCESS_CPUTIME_ID), w0 = clock_seconds(CLOCK_MONOTONIC);
    cpu::linear(jobs);
    cpu_s.push_back(clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0);
    wall_s.push_back(clock_seconds(CLOCK_MONOTONIC) - w0);
  }
  std::sort(cpu_s.begin(), cpu_s.end());
  std::sort(wall_s.begin(), wall_s.end());
  const double gb = static_cast<double>(bytes) / 1e9;
  std::printf("%s %lld x [%lld, %lld], %lld rows: %.1f MB; wall min %.3f ms (%.2f GB/s), median %.3f ms; "
              "cpu min %.3f ms (%.2f GB/s), median %.3f ms\n",
              encoding.c_str(), static_cast<long long>(E), static_cast<long long>(N), static_cast<long long>(K),
              static_cast<long long>(rows), gb * 1e3, wall_s.front() * 1e3, gb / wall_s.front(), wall_s[wall_s.size() / 2] * 1e3,
              cpu_s.front() * 1e3, gb / cpu_s.front(), cpu_s[cpu_s.size() / 2] * 1e3);
  return 0;
}
