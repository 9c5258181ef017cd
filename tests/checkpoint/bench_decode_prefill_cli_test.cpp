// `fp4serve bench decode` and `bench prefill` on a tiny checkpoint directory (--model):
// they run, print their fields, and their floors count what a step reads and computes.
// The expected byte and FLOP counts are summed here from the loaded checkpoint's
// linears and the model's shape (a batch-1 decode step runs every projection of every
// layer once, k routed experts a layer, and the head on one row). Speed is not checked.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <regex>
#include <string>

#include "checkpoint/test_model.h"
#include "checkpoint_test_support.h"

namespace fp4serve {
namespace {

using ::testing::HasSubstr;
using testing::CliResult;
using testing::fp4serve;
using testing::ScratchDir;

double number_after(const std::string& text, const std::string& pattern) {
  std::smatch m;
  EXPECT_TRUE(std::regex_search(text, m, std::regex(pattern + "([0-9.]+)"))) << pattern << " in:\n" << text;
  return m.empty() ? -1 : std::stod(m[1].str());
}

class BenchModelCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Made once per process, before any test runs (no test's name in the path): the process
    // id keeps ctest's parallel processes, one per test, out of each other's directories.
    dir_ = new ScratchDir("bench-" + std::to_string(::getpid()));
    TestModelOptions options;  // tiny, native FP8 + MXFP4, with an MTP block the benches do not run
    options.seed = 3;
    write_test_model(*dir_ / "model", options);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string model() { return *dir_ / "model"; }
  static ScratchDir* dir_;
};
ScratchDir* BenchModelCli::dir_ = nullptr;

bool is_expert(const std::string& name) { return name.find(".ffn.experts.") != std::string::npos; }
bool is_mtp(const std::string& name) { return name.starts_with("mtp."); }

TEST_F(BenchModelCli, DecodePrintsTheFloorOfTheBytesAStepReads) {
  const CliResult r = fp4serve("bench decode --model " + model() + " --tokens 3 --prompt 4 --threads 2 --bandwidth-gb 0.05");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("bench decode: cpu ("));
  EXPECT_THAT(r.output, HasSubstr(", 2 threads)"));
  EXPECT_THAT(r.output, HasSubstr("model " + model() + " (deepseek-native): 4 layers"));
  EXPECT_THAT(r.output, HasSubstr("decode batch 1: median "));
  EXPECT_THAT(r.output, HasSubstr("the routed experts the rows chose"));
  EXPECT_THAT(r.output, HasSubstr("% of the floor"));

  const Checkpoint c = load_checkpoint(model(), testing::quiet());
  const ModelConfig& cfg = c.config;
  uint64_t expected = 0;
  for (const auto& [name, w] : c.linears)
    if (!is_expert(name) && !is_mtp(name)) expected += w.stored_bytes();
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    uint64_t expert = 0;
    for (const char* w : {"w1", "w2", "w3"}) expert += c.linear(p + "ffn.experts.0." + w).stored_bytes();
    expected += static_cast<uint64_t>(cfg.experts_per_token) * expert;
    expected += c.tensor(p + "hc_attn_fn").nbytes + c.tensor(p + "hc_ffn_fn").nbytes;
  }
  const TensorView& embed = c.tensor("embed.weight");
  expected += c.tensor("hc_head_fn").nbytes + embed.nbytes / static_cast<size_t>(embed.shape[0]);
  EXPECT_EQ(number_after(r.output, "floor: "), static_cast<double>(expected));
}

TEST_F(BenchModelCli, DecodeBatchAndProfile) {
  const CliResult r = fp4serve("bench decode --model " + model() + " --tokens 2 --prompt 3 --batch 3 --profile --bandwidth-gb 0.05");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("prefill 3 x 3 tokens"));
  EXPECT_THAT(r.output, HasSubstr("decode batch 3: median "));
  EXPECT_THAT(r.output, HasSubstr("compute floor: "));
  // Three rows read the non-expert weights once and between k and 3k experts a layer.
  const double bytes = number_after(r.output, "floor: ");
  const CliResult one = fp4serve("bench decode --model " + model() + " --tokens 2 --prompt 3 --bandwidth-gb 0.05");
  ASSERT_EQ(one.status, 0) << one.output;
  const double single = number_after(one.output, "floor: ");
  EXPECT_GE(bytes, single);
  EXPECT_LT(bytes, 3 * single);
  for (const char* row : {"| op / projection", "| linear attn.wq_a ", "| linear attn.wo_b ", "| linear head ",
                          "| moe ffn.gate + routing ", "| moe ffn w1+w3 (routed + shared) + swiglu ",
                          "| moe ffn w2 (routed + shared) + combine ", "| op attention_sequences ", "| op hc_pre ",
                          "| projections (rows with weights) ", "| all ops "})
    EXPECT_THAT(r.output, HasSubstr(row));
}

TEST_F(BenchModelCli, PrefillCountsTheProjectionFlops) {
  const int64_t T = 8;
  const CliResult r = fp4serve("bench prefill --model " + model() + " --prompt-tokens " + std::to_string(T) + " --repeats 1 --profile");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("prefill 8 tokens: median "));
  EXPECT_THAT(r.output, HasSubstr("measured peak of "));
  EXPECT_THAT(r.output, HasSubstr("% of the peak"));
  for (const char* row : {"| op attention_sequences ", "| moe ffn w1+w3 (routed + shared) + swiglu ", "| all ops "})
    EXPECT_THAT(r.output, HasSubstr(row));

  const Checkpoint c = load_checkpoint(model(), testing::quiet());
  const ModelConfig& cfg = c.config;
  double expected = 0;
  auto product = [](const LinearWeight& w) { return 2.0 * static_cast<double>(w.out_features * w.in_features); };
  for (const auto& [name, w] : c.linears) {
    if (is_expert(name) || is_mtp(name)) continue;
    expected += (name == "head" ? 1 : T) * product(w);  // the head runs on the last row only
  }
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    for (const char* w : {"w1", "w2", "w3"})
      expected += static_cast<double>(T * cfg.experts_per_token) * product(c.linear(p + "ffn.experts.0." + w));
    for (const char* hc : {"hc_attn_fn", "hc_ffn_fn"}) {
      const TensorView& fn = c.tensor(p + hc);
      expected += 2.0 * static_cast<double>(T * fn.shape[0] * fn.shape[1]);
    }
  }
  const TensorView& head_fn = c.tensor("hc_head_fn");
  expected += 2.0 * static_cast<double>(head_fn.shape[0] * head_fn.shape[1]);
  EXPECT_EQ(number_after(r.output, "projection FLOPs: "), expected);
}

TEST_F(BenchModelCli, BadModelDirectoryIsAClearError) {
  ScratchDir empty("empty");
  for (const char* bench : {"decode", "prefill"}) {
    const CliResult missing = fp4serve(std::string("bench ") + bench + " --model " + (empty / "nothing-here"));
    EXPECT_NE(missing.status, 0);
    EXPECT_THAT(missing.output, HasSubstr("error: --model " + (empty / "nothing-here") + ": no such directory"));
    const CliResult no_config = fp4serve(std::string("bench ") + bench + " --model " + empty.str());
    EXPECT_NE(no_config.status, 0);
    EXPECT_THAT(no_config.output, HasSubstr("error: " + empty.str() + ": no config.json"));
  }
}

}  // namespace
}  // namespace fp4serve
