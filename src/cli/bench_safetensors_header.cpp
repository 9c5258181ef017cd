// `fp4serve bench header [--tensors 100000]`: how long validating a safetensors header
// and a shard index of many tensors takes, on ones generated in memory with ModelOpt
// NVFP4 expert names (a DeepSeek-V4-Pro index lists over 100k tensors). The reference is
// linear time: the header's bytes at memory speed; this benchmark caught the JSON parser
// being quadratic in the tensor count (docs/CHECKPOINTS.md).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "base/error.h"
#include "cli/command.h"
#include "io/safetensors_header.h"
#include "io/safetensors_index.h"

namespace fp4serve::cli {
namespace {

struct BenchHeaderArgs {
  int64_t tensors = 100000;
  int rounds = 3;
};

// Tensor i of a generated checkpoint: four tensors per projection, three projections per expert.
std::string tensor_name(int64_t i) {
  static const char* const kProjections[] = {"gate_proj", "up_proj", "down_proj"};
  static const char* const kSuffixes[] = {"weight", "weight_scale", "weight_scale_2", "input_scale"};
  const int64_t projection = i / 4, expert = projection / 3;
  return "model.layers." + std::to_string(expert / 384) + ".mlp.experts." + std::to_string(expert % 384) + "." +
         kProjections[projection % 3] + "." + kSuffixes[i % 4];
}

template <typename Fn>
double best_seconds(int rounds, Fn&& fn) {
  double best = 1e30;
  for (int r = 0; r < rounds; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

int run_bench_header(const BenchHeaderArgs& a) {
  FP4SERVE_CHECK(a.tensors > 0 && a.rounds > 0, "--tensors and --rounds must be positive");
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
  std::string index = "{\"metadata\":{\"total_size\":" + std::to_string(2 * a.tensors) + "},\"weight_map\":{";
  for (int64_t i = 0; i < a.tensors; ++i) {
    const std::string name = tensor_name(i);
    header += ",\"" + name + "\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[" + std::to_string(2 * i) + "," +
              std::to_string(2 * i + 2) + "]}";
    index += (i ? ",\"" : "\"") + name + "\":\"model-" + std::to_string(1 + i / 1000) + ".safetensors\"";
  }
  header += "}";
  index += "}}";
  std::string file(8, '\0');
  for (int b = 0; b < 8; ++b) file[static_cast<size_t>(b)] = static_cast<char>((header.size() >> (8 * b)) & 0xFF);
  file += header;
  file.append(static_cast<size_t>(2 * a.tensors), '\0');

  size_t parsed = 0;
  const double header_s = best_seconds(a.rounds, [&] {
    parsed = parse_safetensors_header(reinterpret_cast<const std::byte*>(file.data()), file.size(), "generated").tensors.size();
  });
  FP4SERVE_CHECK(parsed == static_cast<size_t>(a.tensors), "generated header: parsed {} tensors of {}", parsed, a.tensors);
  const double index_s = best_seconds(a.rounds, [&] { parsed = parse_safetensors_index(index, "generated").weight_map.size(); });
  FP4SERVE_CHECK(parsed == static_cast<size_t>(a.tensors), "generated index: parsed {} tensors of {}", parsed, a.tensors);
  std::printf("%lld tensors (best of %d)\n", static_cast<long long>(a.tensors), a.rounds);
  std::printf("  header %6.2f MB  %8.3f s  %6.1f MB/s  %9.0f tensors/s\n", header.size() / 1e6, header_s,
              header.size() / 1e6 / header_s, a.tensors / header_s);
  std::printf("  index  %6.2f MB  %8.3f s  %6.1f MB/s  %9.0f tensors/s\n", index.size() / 1e6, index_s,
              index.size() / 1e6 / index_s, a.tensors / index_s);
  return 0;
}

const RegisterBenchmark header{Command{
    "header", "Validating a generated safetensors header and shard index of many tensors",
    [](CLI::App& sub) -> std::function<int()> {
      auto a = std::make_shared<BenchHeaderArgs>();
      sub.add_option("--tensors", a->tensors, "Tensors in the generated header and index")->capture_default_str();
      sub.add_option("--rounds", a->rounds, "Timed rounds (the best is shown)")->capture_default_str();
      return [a] { return run_bench_header(*a); };
    }}};

}  // namespace
}  // namespace fp4serve::cli
