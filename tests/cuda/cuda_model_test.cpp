// The whole model, `fp4serve logits --device cuda` against `--device cpu` at the same
// --act-quant, prefill and token-by-token decode: on every layout `make-test-model` writes
// and every parity fixture of tests/fixtures/parity. Bound (issue 12): median relative
// logit error over positions <= 1%, top-1 agreement >= 99% of positions.
#ifdef FP4SERVE_HAVE_CUDA
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cuda_test_support.h"
#include "io/safetensors.h"

namespace fp4serve {
namespace {

int run_cli(const std::string& args, std::string* output) {
  const char* bin = std::getenv("FP4SERVE_BIN");
  const std::string cmd = std::string(bin ? bin : FP4SERVE_BINARY_DIR "/bin/fp4serve") + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  while (p && fgets(buf, sizeof buf, p)) *output += buf;
  return p ? pclose(p) : -1;
}

std::vector<float> logits_of(const std::string& path, int64_t* vocab) {
  const auto file = SafetensorsFile::open(path);
  const TensorView& t = file->tensor("logits");
  *vocab = t.shape.at(1);
  return std::vector<float>(t.as<float>(), t.as<float>() + t.numel());
}

// 40 tokens, fixed, inside every test model's vocabulary.
std::string test_tokens() {
  std::string s;
  for (int i = 0; i < 40; ++i) s += (i ? "," : "") + std::to_string(3 + (i * 37) % 250);
  return s;
}

void check_model(const std::string& dir, const std::string& act_quant, bool decode) {
  const std::string what = dir + " --act-quant " + act_quant + (decode ? " --decode" : "");
  std::vector<float> out[2];
  int64_t vocab = 0;
  for (int d = 0; d < 2; ++d) {
    const std::string device = d ? "cuda" : "cpu", file = ::testing::TempDir() + "cuda_model_" + device + ".safetensors";
    std::string log;
    const int status = run_cli("logits " + dir + " --device " + device + " --act-quant " + act_quant +
                                   (decode ? " --decode" : "") + " --tokens " + test_tokens() + " --out " + file,
                               &log);
    ASSERT_EQ(status, 0) << what << " on " << device << ":\n" << log;
    out[d] = logits_of(file, &vocab);
  }
  ASSERT_EQ(out[0].size(), out[1].size()) << what;
  const int64_t positions = static_cast<int64_t>(out[0].size()) / vocab;
  std::vector<double> rel;
  int64_t agree = 0;
  for (int64_t s = 0; s < positions; ++s) {
    const float* c = out[0].data() + s * vocab;
    const float* g = out[1].data() + s * vocab;
    double diff = 0.0, norm = 0.0;
    for (int64_t v = 0; v < vocab; ++v) {
      diff += (static_cast<double>(g[v]) - c[v]) * (static_cast<double>(g[v]) - c[v]);
      norm += static_cast<double>(c[v]) * c[v];
    }
    rel.push_back(std::isfinite(diff) ? std::sqrt(diff / std::max(norm, 1e-30)) : INFINITY);
    agree += (std::max_element(c, c + vocab) - c) == (std::max_element(g, g + vocab) - g);
  }
  std::sort(rel.begin(), rel.end());
  const double median = rel[rel.size() / 2], top1 = static_cast<double>(agree) / static_cast<double>(positions);
  std::printf("  %-70s median rel %.2e, max %.2e, top-1 %.3f\n", what.c_str(), median, rel.back(), top1);
  EXPECT_LE(median, 0.01) << what;
  EXPECT_GE(top1, 0.99) << what;
}

TEST(CudaModel, LogitsMatchTheCpuOnEveryTestModelLayout) {
  FP4SERVE_REQUIRE_GPU();
  for (const std::string layout : {"native", "nvfp4", "transformers-saved", "bf16"}) {
    const std::string dir = ::testing::TempDir() + "cuda_model_" + layout;
    std::string log;
    ASSERT_EQ(run_cli("make-test-model " + dir + " --layout " + layout + " --seed 11", &log), 0) << log;
    for (const std::string act : {"auto", "fp8", "off"})
      for (const bool decode : {false, true}) check_model(dir, act, decode);
  }
}

TEST(CudaModel, LogitsMatchTheCpuOnTheParityFixtures) {
  FP4SERVE_REQUIRE_GPU();
  for (const std::string m : {"flash/native", "flash/nvfp4", "flash/bf16", "pro/native", "pro/nvfp4"})
    for (const bool decode : {false, true})
      check_model(std::string(FP4SERVE_SOURCE_DIR) + "/tests/fixtures/parity/" + m, "auto", decode);
}

}  // namespace
}  // namespace fp4serve
#endif
