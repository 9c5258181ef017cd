// Stop strings against a naive reference on the whole text, for every way of
// cutting the text into streamed pieces.
#include "server/stop_strings.h"

#include <gtest/gtest.h>

#include <random>

namespace fp4serve::server {
namespace {

// Reference on the whole text: the occurrence that ends first (the longest
// stop string when several end at the same byte).
std::pair<std::string, std::string> reference(const std::string& text, const std::vector<std::string>& stops,
                                              bool include) {
  for (size_t end = 1; end <= text.size(); ++end) {
    std::string matched;
    for (const auto& s : stops) {
      if (s.size() <= end && text.compare(end - s.size(), s.size(), s) == 0 && s.size() > matched.size()) matched = s;
    }
    if (!matched.empty()) return {text.substr(0, include ? end : end - matched.size()), matched};
  }
  return {text, ""};
}

std::pair<std::string, std::string> streamed(const std::vector<std::string>& pieces, const std::vector<std::string>& stops,
                                             bool include) {
  StopStringMatcher m(stops, include);
  std::string out;
  for (const auto& p : pieces) out += m.push(p);
  out += m.finish();
  return {out, m.matched_stop()};
}

TEST(StopStrings, HandPickedCases) {
  EXPECT_EQ(streamed({"Hello wor", "ld. More"}, {"world"}, false), std::make_pair(std::string("Hello "), std::string("world")));
  EXPECT_EQ(streamed({"Hello wor", "ld. More"}, {"world"}, true),
            std::make_pair(std::string("Hello world"), std::string("world")));
  // A false start is released once it cannot match any more.
  EXPECT_EQ(streamed({"ab", "ac", "d"}, {"abc"}, false), std::make_pair(std::string("abacd"), std::string()));
  // The first to complete wins over list order; at the same end, the longest.
  EXPECT_EQ(streamed({"xyz"}, {"z", "y"}, false).second, "y");
  EXPECT_EQ(streamed({"xyz"}, {"yz", "y"}, false).second, "y");
  EXPECT_EQ(streamed({"xyz"}, {"z", "yz"}, false).second, "yz");
  // Nothing is held back without stop strings.
  StopStringMatcher none({}, false);
  EXPECT_EQ(none.push("abc"), "abc");
}

TEST(StopStrings, HoldsBackOnlyPossiblePrefixes) {
  StopStringMatcher m({"</end>"}, false);
  EXPECT_EQ(m.push("text </e"), "text ");  // "</e" may start the stop string
  EXPECT_EQ(m.push("x"), "</ex");          // no longer can
  EXPECT_FALSE(m.matched());
}

TEST(StopStrings, EverySplitOfRandomTextsMatchesTheReference) {
  std::mt19937 rng(17);
  const std::string alphabet = "abc";
  for (int trial = 0; trial < 400; ++trial) {
    std::string text;
    for (int i = 0, n = 1 + static_cast<int>(rng() % 12); i < n; ++i) text += alphabet[rng() % alphabet.size()];
    std::vector<std::string> stops;
    for (int k = 0, n = 1 + static_cast<int>(rng() % 3); k < n; ++k) {
      std::string s;
      for (int i = 0, m = 1 + static_cast<int>(rng() % 4); i < m; ++i) s += alphabet[rng() % alphabet.size()];
      stops.push_back(s);
    }
    const bool include = trial % 2;
    auto want = reference(text, stops, include);
    // Every cut set of the text into pieces (2^(n-1) of them).
    for (uint32_t cuts = 0; cuts < (1u << (text.size() - 1)); ++cuts) {
      std::vector<std::string> pieces(1);
      for (size_t i = 0; i < text.size(); ++i) {
        pieces.back() += text[i];
        if (i + 1 < text.size() && (cuts >> i & 1)) pieces.emplace_back();
      }
      ASSERT_EQ(streamed(pieces, stops, include), want) << "text " << text << " cuts " << cuts;
    }
  }
}

}  // namespace
}  // namespace fp4serve::server
