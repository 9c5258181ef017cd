// `fp4serve generate` samples with the server's sampler (runtime/sampler.h).
// The binary runs on the default model; every sampled token is checked against
// the model's logits computed in-process (runtime::Engine) and a float64
// softmax written here: the token must be one the sampling settings allow.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <set>
#include <sstream>
#include <string>

#include "runtime/engine.h"

namespace fp4serve {
namespace {

const std::string kModelDir = FP4SERVE_SOURCE_DIR "/models/default";
const std::vector<int32_t> kPrompt{0, 470, 1767, 291};  // BOS "The history of" in the default tokenizer

struct Result {
  int status = 0;
  std::string output;
};

Result run_generate(const std::string& args) {
  const char* bin = std::getenv("FP4SERVE_BIN");
  const std::string cmd = std::string(bin ? bin : FP4SERVE_BINARY_DIR "/bin/fp4serve") + " generate " + args + " 2>&1";
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  while (p && fgets(buf, sizeof buf, p)) r.output += buf;
  r.status = p ? pclose(p) : -1;
  return r;
}

std::string prompt_list() {
  std::string s;
  for (int32_t t : kPrompt) {
    if (!s.empty()) s += ',';
    s += std::to_string(t);
  }
  return s;
}

// The generated ids (the first output line of `--tokens` mode after the "device: ..."
// line every command that runs the model prints at start).
std::vector<int32_t> generated_ids(const Result& r) {
  std::vector<int32_t> ids;
  std::string output = r.output;
  if (output.rfind("device: ", 0) == 0) output = output.substr(output.find('\n') + 1);
  std::istringstream line(output.substr(0, output.find('\n')));
  for (std::string item; std::getline(line, item, ',');) ids.push_back(std::stoi(item));
  return ids;
}

// The model's next-token probabilities after `tokens`, in float64, at `temperature`.
std::vector<double> next_token_probabilities(const std::vector<int32_t>& tokens, double temperature) {
  static std::unique_ptr<Engine> engine = [] {
    EngineOptions o;
    o.reserve_tokens = 256;
    o.show_progress = false;
    return Engine::open(kModelDir, o);
  }();
  constexpr SequenceId kSequence = 0;
  engine->create_sequence(kSequence);
  std::vector<float> logits;
  const StepItem r{kSequence, 0, tokens, LogitsMode::kLast};
  engine->step(std::span<const StepItem>(&r, 1), logits);
  engine->free_sequence(kSequence);
  const double mx = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double total = 0;
  for (size_t v = 0; v < p.size(); ++v) total += p[v] = std::exp((logits[v] - mx) / temperature);
  for (double& x : p) x /= total;
  return p;
}

// Runs generate and checks each token against `allowed(probabilities, token)`.
template <typename Allowed>
std::vector<int32_t> generate_and_check(const std::string& flags, double temperature, Allowed allowed) {
  const Result r = run_generate(kModelDir + " --tokens " + prompt_list() + " --max-tokens 12 " + flags);
  EXPECT_EQ(r.status, 0) << r.output;
  const std::vector<int32_t> ids = generated_ids(r);
  EXPECT_FALSE(ids.empty()) << r.output;
  std::vector<int32_t> context = kPrompt;
  for (int32_t id : ids) {
    const std::vector<double> p = next_token_probabilities(context, temperature);
    EXPECT_TRUE(allowed(p, id)) << flags << ": token " << id << " (p = " << p.at(id) << ") after " << context.size()
                                << " tokens is not allowed";
    context.push_back(id);
  }
  return ids;
}

int32_t most_likely(const std::vector<double>& p) {
  return static_cast<int32_t>(std::max_element(p.begin(), p.end()) - p.begin());
}

TEST(GenerateCli, TopKOneAndMinPOneAreGreedy) {
  auto greedy = [](const std::vector<double>& p, int32_t id) { return id == most_likely(p); };
  const auto plain = generate_and_check("", 1.0, greedy);
  EXPECT_EQ(generate_and_check("--temperature 1.3 --top-k 1 --seed 5", 1.0, greedy), plain);
  EXPECT_EQ(generate_and_check("--temperature 0.7 --min-p 1 --seed 5", 1.0, greedy), plain);
}

TEST(GenerateCli, SampledTokensStayInTheNucleusAndFollowTheSeed) {
  constexpr double kTemperature = 0.8, kTopP = 0.6;
  // The nucleus: the most likely tokens until their mass reaches top_p.
  auto in_nucleus = [](const std::vector<double>& p, int32_t id) {
    std::vector<int32_t> order(p.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
    double mass = 0;
    for (int32_t t : order) {
      if (t == id) return true;
      mass += p[t];
      if (mass >= kTopP) return false;
    }
    return false;
  };
  const std::string flags = "--temperature 0.8 --top-p 0.6";
  std::set<std::vector<int32_t>> outputs;
  for (int seed : {1, 2, 3}) {
    const auto a = generate_and_check(flags + " --seed " + std::to_string(seed), kTemperature, in_nucleus);
    const auto b = generate_and_check(flags + " --seed " + std::to_string(seed), kTemperature, in_nucleus);
    EXPECT_EQ(a, b) << "seed " << seed << " is not reproducible";
    outputs.insert(a);
  }
  EXPECT_GT(outputs.size(), 1u) << "three seeds gave the same tokens";
}

TEST(GenerateCli, MinPKeepsOnlyTokensNearTheTop) {
  auto near_top = [](const std::vector<double>& p, int32_t id) { return p[id] >= 0.3 * p[most_likely(p)] * (1 - 1e-9); };
  generate_and_check("--temperature 1 --min-p 0.3 --seed 9", 1.0, near_top);
}

TEST(GenerateCli, BadSamplingFlagsNameTheParameterBeforeLoading) {
  for (const auto& [flag, name] : std::vector<std::pair<std::string, std::string>>{
           {"--top-p 1.5", "top_p 1.5"}, {"--top-p 0", "top_p 0"}, {"--top-k -2", "top_k -2"},
           {"--min-p 2", "min_p 2"}, {"--temperature -1", "temperature -1"}}) {
    const Result r = run_generate("/nonexistent/model --tokens 1 --max-tokens 2 " + flag);
    EXPECT_NE(r.status, 0) << flag;
    EXPECT_NE(r.output.find(name), std::string::npos) << flag << ": " << r.output;
  }
}

// --speculative-config: greedy tokens as without it, on a DSpark test model; bad configs are
// errors naming what is wrong (models/default has no draft).
TEST(GenerateCli, SpeculativeConfigKeepsGreedyTokensAndNamesBadConfigs) {
  const std::string dir = ::testing::TempDir() + "generate_cli_dspark";
  const char* bin = std::getenv("FP4SERVE_BIN");
  const std::string make = std::string(bin ? bin : FP4SERVE_BINARY_DIR "/bin/fp4serve") + " make-test-model " + dir +
                           " --draft dspark --layout bf16 > /dev/null 2>&1";
  ASSERT_EQ(std::system(make.c_str()), 0);
  const std::string args = dir + " --tokens 5,6,7,8,9 --max-tokens 10 --device cpu";
  const Result plain = run_generate(args);
  ASSERT_EQ(plain.status, 0) << plain.output;
  const Result spec = run_generate(args + R"( --speculative-config '{"method": "dspark", "num_speculative_tokens": 5}')");
  ASSERT_EQ(spec.status, 0) << spec.output;
  EXPECT_EQ(generated_ids(spec), generated_ids(plain));
  EXPECT_NE(spec.output.find("drafted tokens"), std::string::npos) << spec.output;

  const Result bad_json = run_generate(args + R"( --speculative-config '{"method": dspark}')");
  EXPECT_NE(bad_json.status, 0);
  EXPECT_NE(bad_json.output.find("--speculative-config is not valid JSON"), std::string::npos) << bad_json.output;
  const Result no_draft =
      run_generate(kModelDir + " --tokens 1,2 --max-tokens 2 --speculative-config '{\"method\": \"mtp\", \"num_speculative_tokens\": 1}'");
  EXPECT_NE(no_draft.status, 0);
  EXPECT_NE(no_draft.output.find("no MTP head"), std::string::npos) << no_draft.output;
}

}  // namespace
}  // namespace fp4serve
