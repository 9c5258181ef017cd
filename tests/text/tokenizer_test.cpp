// The tokenizer on small tokenizer.json files written here, with expected ids
// worked out by hand from the BPE rules, and its errors for bad input.
#include "text/tokenizer.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "base/error.h"
#include "text/byte_level.h"
#include "text/utf8.h"

namespace fp4serve::text {
namespace {

// Ids 0..255 are the bytes (byte-level form); extra tokens follow from 256.
nlohmann::json byte_vocab(const std::vector<std::string>& extra) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[bytes_to_byte_level(std::string(1, static_cast<char>(b)))] = b;
  for (size_t i = 0; i < extra.size(); ++i) vocab[extra[i]] = 256 + i;
  return vocab;
}

nlohmann::json tokenizer_json(const std::vector<std::string>& extra, const nlohmann::json& merges,
                              const nlohmann::json& added = nlohmann::json::array()) {
  return {{"model", {{"type", "BPE"}, {"vocab", byte_vocab(extra)}, {"merges", merges}}},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
          {"decoder", {{"type", "ByteLevel"}}}};
}

Tokenizer load(const nlohmann::json& json) { return Tokenizer::from_json(json.dump(), "test tokenizer.json"); }

TEST(Tokenizer, LowestRankMergesFirst) {
  // "abc" with merges [b c, a b]: (b,c) ranks first, leaving a + bc; with the
  // ranks swapped, a + b merge first, leaving ab + c.
  const auto bc_first = load(tokenizer_json({"bc", "ab"}, {"b c", "a b"}));
  EXPECT_EQ(bc_first.encode("abc"), (std::vector<uint32_t>{'a', 256}));
  const auto ab_first = load(tokenizer_json({"ab", "bc"}, {"a b", "b c"}));
  EXPECT_EQ(ab_first.encode("abc"), (std::vector<uint32_t>{256, 'c'}));
}

TEST(Tokenizer, EqualRanksMergeLeftmostFirst) {
  // "aaa": the pair (a,a) occurs twice; the left one merges: aa + a.
  const auto t = load(tokenizer_json({"aa"}, {"a a"}));
  EXPECT_EQ(t.encode("aaa"), (std::vector<uint32_t>{256, 'a'}));
  EXPECT_EQ(t.encode("aaaa"), (std::vector<uint32_t>{256, 256}));
}

TEST(Tokenizer, MergesChainAndArrayFormIsTheSame) {
  // th, the, Ġthe: " the" becomes one token; merges as [a, b] arrays read the same.
  const std::vector<std::string> extra = {"th", "the", "Ġthe"};
  const auto strings = load(tokenizer_json(extra, {"t h", "th e", "Ġ the"}));
  using nlohmann::json;
  const auto arrays = load(tokenizer_json(extra, json::array({json::array({"t", "h"}), json::array({"th", "e"}),
                                                              json::array({"Ġ", "the"})})));
  const std::vector<uint32_t> expected = {257, 258, 258};  // "the", " the", " the" (GPT-2 regex words)
  EXPECT_EQ(strings.encode("the the the"), expected);
  EXPECT_EQ(arrays.encode("the the the"), expected);
}

TEST(Tokenizer, AddedTokensMatchLongestFirst) {
  nlohmann::json added = nlohmann::json::array();
  added.push_back({{"id", 300}, {"content", "<a>"}, {"special", true}});
  added.push_back({{"id", 301}, {"content", "<a>b"}, {"special", false}});
  const auto t = load(tokenizer_json({}, nlohmann::json::array(), added));
  EXPECT_EQ(t.encode("x<a>by<a>"), (std::vector<uint32_t>{'x', 301, 'y', 300}));
  EXPECT_EQ(t.decode(std::vector<uint32_t>{'x', 301, 'y', 300}), "x<a>by<a>");
  EXPECT_EQ(t.decode(std::vector<uint32_t>{'x', 301, 300}, /*skip_special_tokens=*/true), "x<a>b");
  EXPECT_TRUE(t.is_special(300));
  EXPECT_FALSE(t.is_special(301));
  EXPECT_EQ(t.token_to_id("<a>b"), 301u);
  EXPECT_EQ(t.vocab_size(), 302u);
}

TEST(Tokenizer, IncrementalDecoderNeverSplitsACharacter) {
  // Byte tokens in random order and random UTF-8: pieces are valid UTF-8,
  // at most 3 bytes wait, and the pieces add up to the lossy decode.
  const auto t = load(tokenizer_json({}, nlohmann::json::array()));
  std::mt19937 rng(3);
  const std::string sample = "aé字😀\xF0\x9F\x98\xE0\x80\xC3";
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<uint32_t> ids;
    for (int i = rng() % 20; i > 0; --i)
      ids.push_back(rng() % 3 ? static_cast<uint8_t>(sample[rng() % sample.size()]) : rng() % 256);
    IncrementalDecoder stream(t);
    std::string streamed;
    for (uint32_t id : ids) {
      const std::string piece = stream.push(id);
      ASSERT_EQ(find_invalid_utf8(piece), std::string::npos);
      ASSERT_LE(stream.pending_bytes(), 3u);
      streamed += piece;
    }
    streamed += stream.finish();
    std::string bytes;
    for (uint32_t id : ids) bytes += static_cast<char>(id);
    ASSERT_EQ(streamed, utf8_lossy(bytes));
    ASSERT_EQ(t.decode(ids), utf8_lossy(bytes));
  }
}

TEST(Tokenizer, ConcurrentEncodesAgreeWithOneThread) {
  // Server threads share one Tokenizer: per-thread scratch, a locked word cache.
  const auto t = load(tokenizer_json({"th", "the", "Ġthe"}, {"t h", "th e", "Ġ the"}));
  std::mt19937 rng(9);
  const char* const words[] = {"the", " the", "then", "字", " 12", "\n", "é", "xyz"};
  std::vector<std::string> texts;
  for (int i = 0; i < 400; ++i) {
    std::string s;
    for (int w = rng() % 30; w > 0; --w) s += words[rng() % std::size(words)];
    texts.push_back(s);
  }
  std::vector<std::vector<uint32_t>> expected;
  {
    const auto fresh = load(tokenizer_json({"th", "the", "Ġthe"}, {"t h", "th e", "Ġ the"}));
    for (const auto& s : texts) expected.push_back(fresh.encode(s));
  }
  std::vector<std::thread> workers;
  std::atomic<int> mismatches{0};
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&, w] {
      for (int round = 0; round < 5; ++round)
        for (size_t i = w; i < texts.size(); i += 2)
          if (t.encode(texts[i]) != expected[i]) ++mismatches;
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(Tokenizer, RejectsInvalidUtf8Text) {
  const auto t = load(tokenizer_json({}, nlohmann::json::array()));
  try {
    t.encode("ok\xC3(");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("text to tokenize is not valid UTF-8: byte 0xC3 at offset 2"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(t.decode(std::vector<uint32_t>{999}), Error);
}

void expect_load_error(const nlohmann::json& json, const std::string& needle) {
  try {
    load(json);
    ADD_FAILURE() << "no error, expected: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Tokenizer, BadTokenizerJsonIsAClearError) {
  EXPECT_THROW(Tokenizer::from_json("{not json", "x.json"), Error);
  EXPECT_THROW(Tokenizer::from_file("/nonexistent/tokenizer.json"), Error);
  const auto good = tokenizer_json({"ab"}, {"a b"});
  auto j = good;
  j["model"]["vocab"].erase("Ġ");
  expect_load_error(j, "byte 0x20 (byte-level 'Ġ') has no token");
  j = good;
  j["model"]["merges"] = {"a z"};
  expect_load_error(j, "merges[0]: token 'az' is not in the vocabulary");
  j = good;
  j["model"]["merges"] = {"a b c"};
  expect_load_error(j, "merges[0]: 'a b c' is not two tokens");
  j = good;
  j["normalizer"] = {{"type", "NFC"}};
  expect_load_error(j, "normalizer");
  j = good;
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_load_error(j, "unsupported pre-tokenizer type 'Whitespace'");
  j = good;
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "("}}}, {"behavior", "Isolated"}};
  expect_load_error(j, "does not compile");
  j = good;
  j["decoder"] = nullptr;
  expect_load_error(j, "decoder");
  j = good;
  j["added_tokens"] = {{{"id", 5}, {"content", "<x>"}}};
  expect_load_error(j, "id 5 of '<x>' belongs to vocabulary token");
  j = good;
  j["model"]["dropout"] = 0.1;
  expect_load_error(j, "dropout");
}

std::string run(const std::string& command) {
  std::array<char, 4096> buffer{};
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  size_t n;
  while (pipe && (n = fread(buffer.data(), 1, buffer.size(), pipe.get())) > 0) out.append(buffer.data(), n);
  return out;
}

TEST(TokenizeCli, EncodesDecodesAndRejectsBadText) {
  const std::string dir = std::string(FP4SERVE_BINARY_DIR) + "/tokenize_cli_test";
  std::system(("mkdir -p '" + dir + "'").c_str());
  std::ofstream(dir + "/tokenizer.json") << tokenizer_json({"th", "the"}, {"t h", "th e"}).dump();
  std::ofstream(dir + "/bad.txt", std::ios::binary) << "x\xFF";
  const std::string cli = std::string(FP4SERVE_BINARY_DIR) + "/bin/fp4serve tokenize --tokenizer '" + dir + "/tokenizer.json' ";
  EXPECT_EQ(run(cli + "--text 'the a'"), "[257,32,97]\n");
  EXPECT_EQ(run(cli + "--decode --ids '257, 32, 97'"), "the a");
  EXPECT_EQ(run(cli + "--decode --ids '[104,105]'"), "hi");
  const std::string bad = run(cli + "--text-file '" + dir + "/bad.txt' 2>&1; echo rc=$?");
  EXPECT_NE(bad.find("not valid UTF-8"), std::string::npos) << bad;
  EXPECT_NE(bad.find("rc=1"), std::string::npos) << bad;
}

}  // namespace
}  // namespace fp4serve::text
