// `fp4serve bench perplexity`: the protocol (consecutive windows, each from position 0,
// every token but a window's first predicted) checked against the logits `fp4serve logits`
// gives for each window on its own, with the log-softmax computed here in long double.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "checkpoint/test_model.h"
#include "checkpoint_test_support.h"
#include "io/safetensors.h"

namespace fp4serve {
namespace {

using ::testing::HasSubstr;
using testing::CliResult;
using testing::fp4serve;
using testing::ScratchDir;

void write_u16(const std::string& path, const std::vector<int>& ids) {
  std::ofstream out(path, std::ios::binary);
  for (int id : ids) out.put(static_cast<char>(id & 0xFF)).put(static_cast<char>(id >> 8));
}

// Sum over t of -log softmax(logits[t])[next token], from `fp4serve logits` of the window alone.
long double window_nll(const std::string& model, const std::vector<int>& window, const std::string& scratch) {
  std::string list;
  for (int id : window) {
    if (!list.empty()) list += ',';
    list += std::to_string(id);
  }
  const CliResult r = fp4serve("logits " + model + " --tokens " + list + " --out " + scratch);
  EXPECT_EQ(r.status, 0) << r.output;
  const auto file = SafetensorsFile::open(scratch);
  const TensorView& logits = file->tensor("logits");
  const int64_t V = logits.shape.at(1);
  long double nll = 0;
  for (size_t t = 0; t + 1 < window.size(); ++t) {
    const float* row = logits.as<float>() + t * V;
    long double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<long double>(row[v]));
    nll += std::log(sum) - row[window[t + 1]];
  }
  return nll;
}

TEST(BenchPerplexity, WindowsFromPositionZeroMatchPerWindowLogits) {
  ScratchDir dir("ppl");
  TestModelOptions options;
  options.layout = OutputLayout::kBF16;
  options.preset = "small";
  options.seed = 6;
  write_test_model(dir / "model", options);
  const std::vector<int> tokens = {0, 17, 3, 42, 9, 63, 5, 5, 1, 30};
  write_u16(dir / "t.u16", tokens);
  const CliResult r = fp4serve("bench perplexity " + (dir / "model") + " --tokens " + (dir / "t.u16") +
                               " --window 4 --json " + (dir / "p.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream in(dir / "p.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  const std::vector<std::vector<int>> windows = {{0, 17, 3, 42}, {9, 63, 5, 5}, {1, 30}};
  ASSERT_EQ(j["windows"].size(), windows.size());
  EXPECT_EQ(j["predicted_tokens"].get<int64_t>(), 3 + 3 + 1);
  long double total = 0;
  for (size_t w = 0; w < windows.size(); ++w) {
    const long double expected = window_nll(dir / "model", windows[w], dir / "logits.safetensors");
    EXPECT_EQ(j["windows"][w]["tokens"].get<size_t>(), windows[w].size());
    EXPECT_NEAR(j["windows"][w]["nll_sum"].get<double>(), static_cast<double>(expected), 1e-9 * double(expected)) << w;
    total += expected;
  }
  EXPECT_NEAR(j["perplexity"].get<double>(), std::exp(static_cast<double>(total / 7)), 1e-9);
  // --max-windows keeps the first windows only.
  const CliResult first = fp4serve("bench perplexity " + (dir / "model") + " --tokens " + (dir / "t.u16") +
                                   " --window 4 --max-windows 1 --json " + (dir / "q.json"));
  ASSERT_EQ(first.status, 0) << first.output;
  std::ifstream in1(dir / "q.json");
  EXPECT_EQ(nlohmann::json::parse(in1)["predicted_tokens"].get<int64_t>(), 3);
}

TEST(BenchPerplexity, ErrorsNameTheCulprit) {
  ScratchDir dir("ppl-errors");
  TestModelOptions options;
  options.layout = OutputLayout::kBF16;
  options.preset = "small";
  write_test_model(dir / "model", options);
  write_u16(dir / "big.u16", {1, 2, 64});
  CliResult r = fp4serve("bench perplexity " + (dir / "model") + " --tokens " + (dir / "big.u16"));
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("token 2 is id 64, outside the model's vocabulary [0, 64)"));
  r = fp4serve("bench perplexity " + (dir / "model") + " --tokens " + (dir / "missing.u16"));
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("missing.u16: cannot open"));
  write_u16(dir / "one.u16", {7});
  r = fp4serve("bench perplexity " + (dir / "model") + " --tokens " + (dir / "one.u16"));
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("nothing to predict"));
  r = fp4serve("bench perplexity " + (dir / "model") + " --tokens " + (dir / "big.u16") + " --act-quant fp4");
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("--act-quant fp4"));
}

}  // namespace
}  // namespace fp4serve
