// The streaming output parser: DeepSeek's golden completions, generated
// outputs with known parts (expected values built independently with
// nlohmann), and the split property: any split of any output, random or
// exhaustive for short ones, gives the same deltas and result as the whole.
#include "text/output_parser.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

namespace fp4serve::text {
namespace {

const std::string kEos = "<｜end▁of▁sentence｜>";
const std::string kDsml = "｜DSML｜";

// For messages: the text as a JSON string, bytes that are not UTF-8 replaced.
std::string quoted(const std::string& text) {
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// What the deltas of a stream add up to.
struct Accumulated {
  std::string reasoning, content;
  std::vector<ParsedToolCall> calls;

  void add(const CompletionDelta& d) {
    reasoning += d.reasoning_content;
    content += d.content;
    for (const ToolCallDelta& t : d.tool_calls) {
      if (t.index == calls.size()) {
        ASSERT_FALSE(t.id.empty()) << "the first piece of a tool call carries its id";
        ASSERT_FALSE(t.name.empty()) << "the first piece of a tool call carries its name";
        calls.push_back({t.id, t.name, ""});
      } else {
        ASSERT_LT(t.index, calls.size());
        ASSERT_TRUE(t.id.empty() && t.name.empty()) << "later pieces carry arguments only";
      }
      calls[t.index].arguments += t.arguments;
    }
  }
};

void expect_same(const ParsedCompletion& a, const ParsedCompletion& b, const std::string& context) {
  EXPECT_EQ(a.reasoning_content, b.reasoning_content) << context;
  EXPECT_EQ(a.content, b.content) << context;
  EXPECT_EQ(a.ended, b.ended) << context;
  EXPECT_EQ(a.malformed, b.malformed) << context;
  ASSERT_EQ(a.tool_calls.size(), b.tool_calls.size()) << context;
  for (size_t i = 0; i < a.tool_calls.size(); ++i) {
    EXPECT_EQ(a.tool_calls[i].id, b.tool_calls[i].id) << context;
    EXPECT_EQ(a.tool_calls[i].name, b.tool_calls[i].name) << context;
    EXPECT_EQ(a.tool_calls[i].arguments, b.tool_calls[i].arguments) << context;
  }
}

// Streams `text` cut at `cuts` (sorted offsets) and checks it against the whole parse.
void expect_split_invariant(const std::string& text, ThinkingMode mode, const std::vector<size_t>& cuts,
                            const ParsedCompletion& whole) {
  OutputParser parser(mode);
  Accumulated streamed;
  size_t from = 0;
  for (size_t cut : cuts) {
    streamed.add(parser.push(std::string_view(text).substr(from, cut - from)));
    from = cut;
  }
  streamed.add(parser.push(std::string_view(text).substr(from)));
  streamed.add(parser.finish());
  std::string where = "cuts";
  for (size_t c : cuts) where += " " + std::to_string(c);
  where += " of " + quoted(text);
  expect_same(parser.result(), whole, where);
  EXPECT_EQ(streamed.reasoning, whole.reasoning_content) << where;
  EXPECT_EQ(streamed.content, whole.content) << where;
  ASSERT_EQ(streamed.calls.size(), whole.tool_calls.size()) << where;
  for (size_t i = 0; i < streamed.calls.size(); ++i) EXPECT_EQ(streamed.calls[i].arguments, whole.tool_calls[i].arguments) << where;
}

TEST(OutputParser, DeepSeekGoldenCompletions) {
  // The assistant turns of DeepSeek's goldens, parsed as fresh completions
  // (expected values from the goldens' README).
  const std::string dir = std::string(FP4SERVE_SOURCE_DIR) + "/tests/text/goldens/";
  const std::string opener = "<｜Assistant｜><think>";
  const std::string one = read_file(dir + "deepseek_case_1.output.txt");
  const size_t first = one.find(opener) + opener.size();
  const auto call = parse_completion(one.substr(first, one.find("<｜User｜>", first) - first), ThinkingMode::kThinking);
  EXPECT_EQ(call.reasoning_content, "The user wants to know the weather in Beijing. I should use the get_weather tool.");
  EXPECT_EQ(call.content, "");
  ASSERT_EQ(call.tool_calls.size(), 1u);
  EXPECT_EQ(call.tool_calls[0].name, "get_weather");
  EXPECT_EQ(nlohmann::json::parse(call.tool_calls[0].arguments), nlohmann::json({{"location", "Beijing"}, {"unit", "celsius"}}));
  EXPECT_TRUE(call.ended);
  EXPECT_EQ(call.malformed, "");

  const auto answer = parse_completion(one.substr(one.rfind(opener) + opener.size()), ThinkingMode::kThinking);
  EXPECT_EQ(answer.reasoning_content, "Got the weather data. Let me format a nice response.");
  EXPECT_NE(answer.content.find("22°C"), std::string::npos);
  EXPECT_TRUE(answer.tool_calls.empty());

  const std::string two = read_file(dir + "deepseek_case_2.output.txt");
  const auto last = parse_completion(two.substr(two.rfind(opener) + opener.size()), ThinkingMode::kThinking);
  EXPECT_EQ(last.reasoning_content, "The user asks about the capital of France. It is Paris.");
  EXPECT_EQ(last.content, "The capital of France is Paris.");
  EXPECT_TRUE(last.tool_calls.empty());
}

TEST(OutputParser, SpecToolCallExample) {
  // encoding_dsv4.py: string="true" is a raw string, string="false" a JSON literal.
  const std::string text = "Let me check.\n\n<" + kDsml + "tool_calls>\n<" + kDsml + "invoke name=\"get_weather\">\n<" + kDsml +
                           "parameter name=\"city\" string=\"true\">Hangzhou</" + kDsml + "parameter>\n<" + kDsml +
                           "parameter name=\"days\" string=\"false\">5</" + kDsml + "parameter>\n</" + kDsml + "invoke>\n</" +
                           kDsml + "tool_calls>" + kEos;
  const auto parsed = parse_completion(text, ThinkingMode::kChat, "call_x_");
  EXPECT_EQ(parsed.content, "Let me check.");
  ASSERT_EQ(parsed.tool_calls.size(), 1u);
  EXPECT_EQ(parsed.tool_calls[0].id, "call_x_0");
  EXPECT_EQ(parsed.tool_calls[0].arguments, "{\"city\": \"Hangzhou\", \"days\": 5}");
  EXPECT_TRUE(parsed.ended);
}

TEST(OutputParser, BrokenGrammarAndTrailingTextBecomeContent) {
  auto broken = parse_completion("A\n\n<" + kDsml + "tool_calls>\nbogus" + kEos, ThinkingMode::kChat);
  EXPECT_EQ(broken.content, "A\n\n<" + kDsml + "tool_calls>\nbogus" + kEos);
  EXPECT_TRUE(broken.tool_calls.empty());
  EXPECT_NE(broken.malformed.find("expected <｜DSML｜invoke"), std::string::npos) << broken.malformed;

  auto trailing = parse_completion("Hi" + kEos + "more", ThinkingMode::kChat);
  EXPECT_EQ(trailing.content, "Himore");
  EXPECT_TRUE(trailing.ended);
  EXPECT_NE(trailing.malformed.find("text after"), std::string::npos);

  // A parameter given twice breaks the block: all of it is content, no call is made.
  const std::string parameter = "<" + kDsml + "parameter name=\"a\" string=\"true\">1</" + kDsml + "parameter>\n";
  const std::string block = "\n\n<" + kDsml + "tool_calls>\n<" + kDsml + "invoke name=\"f\">\n" + parameter + parameter;
  auto twice = parse_completion(block, ThinkingMode::kChat);
  EXPECT_TRUE(twice.tool_calls.empty());
  EXPECT_EQ(twice.content, block);
  EXPECT_NE(twice.malformed.find("given twice"), std::string::npos);
}

TEST(OutputParser, ToolCallBlockWithoutTheBlankLineIsStillACall) {
  // V4 models often open the block right after </think> or mid-line; it used
  // to come back as raw markup in content, with no tool_calls.
  const std::string block = "<" + kDsml + "tool_calls>\n<" + kDsml + "invoke name=\"get_weather\">\n<" + kDsml +
                            "parameter name=\"city\" string=\"true\">Paris</" + kDsml + "parameter>\n</" + kDsml +
                            "invoke>\n</" + kDsml + "tool_calls>";
  auto after_think = parse_completion("Need the weather.</think>" + block + kEos, ThinkingMode::kThinking);
  EXPECT_EQ(after_think.reasoning_content, "Need the weather.");
  EXPECT_EQ(after_think.content, "");
  ASSERT_EQ(after_think.tool_calls.size(), 1u);
  EXPECT_EQ(after_think.tool_calls[0].name, "get_weather");
  EXPECT_EQ(after_think.tool_calls[0].arguments, "{\"city\": \"Paris\"}");
  EXPECT_EQ(after_think.malformed, "");

  auto mid_line = parse_completion("Checking." + block, ThinkingMode::kChat);
  EXPECT_EQ(mid_line.content, "Checking.");
  ASSERT_EQ(mid_line.tool_calls.size(), 1u);

  // One newline is not the encoder's blank line: it stays in the content.
  auto one_newline = parse_completion("Checking.\n" + block, ThinkingMode::kChat);
  EXPECT_EQ(one_newline.content, "Checking.\n");
  ASSERT_EQ(one_newline.tool_calls.size(), 1u);

  // Reasoning that never closed: the block still ends it.
  auto in_reasoning = parse_completion("Let me call it." + block, ThinkingMode::kThinking);
  EXPECT_EQ(in_reasoning.reasoning_content, "Let me call it.");
  ASSERT_EQ(in_reasoning.tool_calls.size(), 1u);
}

TEST(OutputParser, BrokenOrTruncatedBlockNeverYieldsAPartialCall) {
  const std::string first = "<" + kDsml + "invoke name=\"a\">\n<" + kDsml + "parameter name=\"x\" string=\"false\">1</" +
                            kDsml + "parameter>\n</" + kDsml + "invoke>\n";
  // A complete first call, then a broken second one: the block is all or nothing.
  const std::string broken = "\n\n<" + kDsml + "tool_calls>\n" + first + "<" + kDsml + "invoke name=\"b\">\nbogus</" + kDsml +
                             "invoke>\n</" + kDsml + "tool_calls>";
  auto parsed = parse_completion("Hi" + broken, ThinkingMode::kChat);
  EXPECT_TRUE(parsed.tool_calls.empty());
  EXPECT_EQ(parsed.content, "Hi" + broken);
  EXPECT_NE(parsed.malformed.find("expected <｜DSML｜parameter"), std::string::npos) << parsed.malformed;

  // Streamed: no tool-call delta ever appears, even after the first call closed.
  OutputParser streaming(ThinkingMode::kChat);
  std::string content;
  for (char c : "Hi" + broken) {
    const CompletionDelta d = streaming.push(std::string_view(&c, 1));
    EXPECT_TRUE(d.tool_calls.empty());
    content += d.content;
  }
  const CompletionDelta last = streaming.finish();
  EXPECT_TRUE(last.tool_calls.empty());
  EXPECT_EQ(content + last.content, "Hi" + broken);

  // Cut short (max_tokens) after a complete call, before the block closed.
  const std::string cut = "\n\n<" + kDsml + "tool_calls>\n" + first;
  auto truncated = parse_completion(cut, ThinkingMode::kChat);
  EXPECT_TRUE(truncated.tool_calls.empty());
  EXPECT_EQ(truncated.content, cut);
  EXPECT_NE(truncated.malformed.find("cut short"), std::string::npos) << truncated.malformed;
}

TEST(OutputParser, TruncatedOutputKeepsEveryByte) {
  // Reasoning cut short: all of it is reasoning.
  auto thinking = parse_completion("Half a thou", ThinkingMode::kThinking);
  EXPECT_EQ(thinking.reasoning_content, "Half a thou");
  EXPECT_FALSE(thinking.ended);
  // Cut inside a would-be tag: the held-back text is content after all.
  auto content = parse_completion("Answer\n\n<｜DSML｜tool_ca", ThinkingMode::kChat);
  EXPECT_EQ(content.content, "Answer\n\n<｜DSML｜tool_ca");
  // Cut inside a parameter value: no call (its arguments would not be JSON); the block is content.
  const std::string cut_value = "\n\n<" + kDsml + "tool_calls>\n<" + kDsml + "invoke name=\"f\">\n<" + kDsml +
                                "parameter name=\"q\" string=\"true\">par</｜DS";
  auto value = parse_completion(cut_value, ThinkingMode::kChat);
  EXPECT_TRUE(value.tool_calls.empty());
  EXPECT_EQ(value.content, cut_value);
}

// A generated output with its known parts.
struct Sample {
  std::string text;
  std::string reasoning, content;
  std::vector<std::pair<std::string, nlohmann::ordered_json>> calls;  // name, arguments (string values are strings)
  std::vector<std::string> expected_arguments;                        // as DeepSeek's decoder writes them
  size_t content_begin = 0, content_end = 0;                          // byte range of the content in text
};

// Free text that contains pieces of every marker but never a whole one.
std::string free_text(std::mt19937& rng, size_t pieces) {
  static const char* const kPieces[] = {"a", "The ", "é", "字", "😀", " ", "\n", "\n\n", "<", "</", "</thi", "</think",
                                        "<think>", "<｜", "<｜DSML｜", "\n\n<｜DSML｜tool", "<｜end▁of▁sen", "｜DSML｜",
                                        "\"", "\\", ">", "tool_calls", "{\"x\": 1}"};
  std::string out;
  for (size_t i = 0; i < pieces; ++i) out += kPieces[rng() % std::size(kPieces)];
  return out;
}

bool contains_marker(const std::string& s) {
  for (const std::string& m : {std::string("</think>"), "<" + kDsml + "tool_calls", kEos}) {
    if (s.find(m) != std::string::npos) return true;
  }
  return false;
}

// True if `marker` first occurs right after `text` in text + marker: the text
// neither contains it nor ends in a way that makes it start earlier.
bool first_at_end(const std::string& text, const std::string& marker) { return (text + marker).find(marker) == text.size(); }

// True if the blank line that the parser strips before a block is `separator`'s
// own: the content's last bytes do not make it start earlier.
bool blank_line_not_earlier(const std::string& content, const std::string& separator) {
  const std::string blank = "\n\n<" + kDsml + "tool_calls";
  const size_t at = (content + separator + "<" + kDsml + "tool_calls").find(blank);
  return at == std::string::npos || at >= content.size();
}

Sample make_sample(std::mt19937& rng, bool thinking) {
  Sample s;
  // The block follows DeepSeek's blank line, or comes straight after the content.
  const std::string separator = rng() % 2 ? "\n\n" : "";
  const std::string block_start = separator + "<" + kDsml + "tool_calls";
  do {
    s.reasoning = thinking ? free_text(rng, rng() % 6) : "";
    s.content = free_text(rng, rng() % 6);
  } while (contains_marker(s.reasoning) || contains_marker(s.content) || !first_at_end(s.reasoning, "</think>") ||
           !first_at_end(s.content, block_start) || !blank_line_not_earlier(s.content, separator) ||
           !first_at_end(s.content, kEos));
  if (thinking) s.text = s.reasoning + "</think>";
  s.content_begin = s.text.size();
  s.text += s.content;
  s.content_end = s.text.size();
  const size_t call_count = rng() % 3;
  if (call_count) s.text += block_start + ">\n";
  static const char* const kValues[] = {"Paris", "", "a \"quoted\" \\ value", "line\nbreak", "</｜DSML｜param", "字😀",
                                        "\x01\x1f", "<｜DSML｜parameter", "tab\there"};
  static const char* const kLiterals[] = {"5", "-1.5e3", "true", "null", "[1, 2]", "{\"k\": [\"v\"]}"};
  for (size_t c = 0; c < call_count; ++c) {
    const std::string name = "tool_" + std::to_string(rng() % 100);
    nlohmann::ordered_json arguments = nlohmann::ordered_json::object();
    std::string expected = "{";
    std::vector<std::string> parameters;
    const size_t parameter_count = rng() % 4;
    for (size_t p = 0; p < parameter_count; ++p) {
      const std::string key = "k" + std::to_string(p) + (p % 2 ? "_é" : "");
      const bool is_string = rng() % 2;
      const std::string value = is_string ? kValues[rng() % std::size(kValues)] : kLiterals[rng() % std::size(kLiterals)];
      arguments[key] = is_string ? nlohmann::ordered_json(value) : nlohmann::ordered_json::parse(value);
      if (p) expected += ", ";
      expected += nlohmann::json(key).dump() + ": " + (is_string ? nlohmann::json(value).dump() : value);
      parameters.push_back("<" + kDsml + "parameter name=\"" + key + "\" string=\"" + (is_string ? "true" : "false") + "\">" +
                           value + "</" + kDsml + "parameter>");
    }
    expected += "}";
    std::string joined;
    for (size_t p = 0; p < parameters.size(); ++p) joined += (p ? "\n" : "") + parameters[p];
    s.text += "<" + kDsml + "invoke name=\"" + name + "\">\n" + joined + "\n</" + kDsml + "invoke>\n";
    s.calls.emplace_back(name, arguments);
    s.expected_arguments.push_back(expected);
  }
  if (call_count) s.text += "</" + kDsml + "tool_calls>";
  s.text += kEos;
  return s;
}

TEST(OutputParser, GeneratedOutputsParseToTheirParts) {
  std::mt19937 rng(5);
  for (int i = 0; i < 2000; ++i) {
    const bool thinking = i % 2;
    const Sample s = make_sample(rng, thinking);
    const auto parsed = parse_completion(s.text, thinking ? ThinkingMode::kThinking : ThinkingMode::kChat);
    const std::string where = quoted(s.text);
    EXPECT_EQ(parsed.reasoning_content, s.reasoning) << where;
    EXPECT_EQ(parsed.content, s.content) << where;
    EXPECT_TRUE(parsed.ended) << where;
    EXPECT_EQ(parsed.malformed, "") << where;
    ASSERT_EQ(parsed.tool_calls.size(), s.calls.size()) << where;
    for (size_t c = 0; c < s.calls.size(); ++c) {
      EXPECT_EQ(parsed.tool_calls[c].name, s.calls[c].first) << where;
      EXPECT_EQ(parsed.tool_calls[c].arguments, s.expected_arguments[c]) << where;
      EXPECT_EQ(nlohmann::ordered_json::parse(parsed.tool_calls[c].arguments), s.calls[c].second) << where;
    }
  }
}

TEST(OutputParser, EverySplitOfShortOutputsMatchesTheWhole) {
  std::mt19937 rng(11);
  size_t splits = 0;
  for (int i = 0; i < 300; ++i) {
    const bool thinking = i % 2;
    const Sample s = make_sample(rng, thinking);
    const ThinkingMode mode = thinking ? ThinkingMode::kThinking : ThinkingMode::kChat;
    // Truncate some: the stream may stop anywhere.
    const std::string text = i % 3 == 0 ? s.text.substr(0, rng() % (s.text.size() + 1)) : s.text;
    const auto whole = parse_completion(text, mode);
    for (size_t a = 0; a <= text.size(); ++a) {
      expect_split_invariant(text, mode, {a}, whole);
      ++splits;
      if (text.size() <= 80) {
        for (size_t b = a; b <= text.size(); ++b, ++splits) expect_split_invariant(text, mode, {a, b}, whole);
      }
    }
    if (HasFailure()) return;
  }
  EXPECT_GT(splits, 50000u);
}

TEST(OutputParser, RandomSplitsOfMutatedOutputsMatchTheWhole) {
  // Random edits break the grammar in every place; the split property must still hold.
  std::mt19937 rng(23);
  static const char* const kEdits[] = {"<", ">", "\n", "\"", "｜", "</｜DSML｜invoke>", "<｜DSML｜invoke name=\"", "x",
                                       "</think>", "<｜end▁of▁sentence｜>", "\" string=\"", "true\">", "\n\n"};
  for (int i = 0; i < 1500; ++i) {
    const bool thinking = i % 2;
    std::string text = make_sample(rng, thinking).text;
    for (size_t e = rng() % 4; e > 0; --e) {
      const size_t at = rng() % (text.size() + 1);
      if (rng() % 2) {
        text.insert(at, kEdits[rng() % std::size(kEdits)]);
      } else {
        text.erase(at, rng() % 8);
      }
    }
    // Edits may cut a UTF-8 character; the parser works on bytes, so that is fine here.
    const ThinkingMode mode = thinking ? ThinkingMode::kThinking : ThinkingMode::kChat;
    const auto whole = parse_completion(text, mode);
    for (int trial = 0; trial < 10; ++trial) {
      std::vector<size_t> cuts;
      for (size_t k = rng() % 12; k > 0; --k) cuts.push_back(rng() % (text.size() + 1));
      std::sort(cuts.begin(), cuts.end());
      expect_split_invariant(text, mode, cuts, whole);
    }
    if (HasFailure()) return;
  }
}

TEST(OutputParser, ByteByByteStreamingNeverShowsMarkup) {
  std::mt19937 rng(31);
  for (int i = 0; i < 300; ++i) {
    const Sample s = make_sample(rng, i % 2);
    OutputParser parser(i % 2 ? ThinkingMode::kThinking : ThinkingMode::kChat);
    std::string content;
    for (char c : s.text) {
      content += parser.push(std::string_view(&c, 1)).content;
      // At every moment the content shown is a prefix of the true content.
      ASSERT_EQ(s.content.compare(0, content.size(), content), 0) << quoted(s.text);
    }
    content += parser.finish().content;
    EXPECT_EQ(content, s.content);
  }
}

}  // namespace
}  // namespace fp4serve::text
