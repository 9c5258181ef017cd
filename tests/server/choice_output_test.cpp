// From tokens to client-visible text with the byte-level stand-in tokenizer,
// whose tokens are single bytes: UTF-8 characters and stop strings span tokens.
#include "server/choice_output.h"

#include <gtest/gtest.h>

#include "server/byte_level_text.h"
#include "server/prometheus_metrics.h"

namespace fp4serve::server {
namespace {

using runtime::Finish;
using runtime::FinishReason;
using runtime::SampledToken;

// Byte tokens, with the special-token spellings as single tokens; unlike
// encode(), this also takes bytes that are not UTF-8 (a truncated output).
std::vector<SampledToken> tokens_of(const ByteLevelText& text, const std::string& s) {
  std::vector<SampledToken> out;
  const std::string close = "</think>";
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, close.size(), close) == 0) {
      out.push_back({ByteLevelText::kThinkClose, 0, {}});
      i += close.size();
    } else {
      out.push_back({ByteLevelText::kFirstByteToken + static_cast<unsigned char>(s[i++]), 0, {}});
    }
  }
  return out;
}

struct Result {
  std::string reasoning, content, finish_reason;
  nlohmann::json stop_reason;
  int64_t tokens = 0;
  std::vector<std::string> pieces;
};

Result run(const std::string& generated, const GenerationOptions& options, bool chat, ThinkingMode mode,
           Finish finish, bool one_token_at_a_time = true) {
  ByteLevelText text;
  ChoiceOutput out(text, options, {ByteLevelText::kEos}, chat ? text.output_parser(mode, false) : nullptr);
  auto tokens = tokens_of(text, generated);
  if (finish.reason == FinishReason::kStopToken) tokens.push_back({ByteLevelText::kEos, 0, {}});
  Result r;
  auto take = [&](const ChoiceOutput::Delta& d) {
    r.reasoning += d.text.reasoning_content;
    r.content += d.text.content;
    if (!d.text.content.empty()) r.pieces.push_back(d.text.content);
  };
  if (one_token_at_a_time) {
    for (const auto& t : tokens) take(out.push(std::span<const SampledToken>(&t, 1)));
  } else {
    take(out.push(tokens));
  }
  take(out.finish(finish));
  r.finish_reason = out.finish_reason();
  r.stop_reason = out.stop_reason();
  r.tokens = out.completion_tokens();
  return r;
}

TEST(ChoiceOutput, NeverEmitsPartialUtf8) {
  GenerationOptions o;
  Result r = run("é✓😀", o, false, ThinkingMode::kChat, {FinishReason::kLength, -1, {}});
  EXPECT_EQ(r.content, "é✓😀");
  EXPECT_EQ(r.pieces, (std::vector<std::string>{"é", "✓", "😀"}));
  EXPECT_EQ(r.tokens, 2 + 3 + 4);
}

TEST(ChoiceOutput, TruncatedCharacterBecomesReplacementAtTheEnd) {
  GenerationOptions o;
  Result r = run("a\xE2\x9C", o, false, ThinkingMode::kChat, {FinishReason::kLength, -1, {}});
  EXPECT_EQ(r.content, "a\xEF\xBF\xBD");
  // A broken sequence mid-stream is one U+FFFD (its maximal valid prefix), then the text goes on.
  r = run("a\xE2\x9C" "b\xFF" "c", o, false, ThinkingMode::kChat, {FinishReason::kLength, -1, {}});
  EXPECT_EQ(r.content, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c");
}

TEST(ChoiceOutput, StopStringAcrossTokensIsNotEmitted) {
  GenerationOptions o;
  o.stop = {"STOP"};
  Result r = run("abcSTOPdef", o, false, ThinkingMode::kChat, {FinishReason::kCancelled, -1, {}});
  EXPECT_EQ(r.content, "abc");
  EXPECT_EQ(r.finish_reason, "stop");
  EXPECT_EQ(r.stop_reason, "STOP");
  EXPECT_EQ(r.tokens, 7);  // a b c S T O P: counting ends at the token that completed the stop
  for (const auto& piece : r.pieces) EXPECT_EQ(piece.find('S'), std::string::npos) << piece;
}

TEST(ChoiceOutput, StopTokenEndsWithoutText) {
  GenerationOptions o;
  Result r = run("done", o, false, ThinkingMode::kChat, {FinishReason::kStopToken, ByteLevelText::kEos, {}});
  EXPECT_EQ(r.content, "done");
  EXPECT_EQ(r.finish_reason, "stop");
  EXPECT_TRUE(r.stop_reason.is_null());  // EOS is not reported as a stop reason
  EXPECT_EQ(r.tokens, 5);
}

TEST(ChoiceOutput, ReasoningSplitsAtThinkClose) {
  GenerationOptions o;
  for (bool one_by_one : {true, false}) {
    Result r = run("let me see</think>42", o, true, ThinkingMode::kThinking,
                   {FinishReason::kStopToken, ByteLevelText::kEos, {}}, one_by_one);
    EXPECT_EQ(r.reasoning, "let me see");
    EXPECT_EQ(r.content, "42");
  }
  Result chat = run("no thinking", o, true, ThinkingMode::kChat, {FinishReason::kLength, -1, {}});
  EXPECT_EQ(chat.reasoning, "");
  EXPECT_EQ(chat.content, "no thinking");
  EXPECT_EQ(chat.finish_reason, "length");
}

TEST(ByteLevelText, EncodeDecodeAndErrors) {
  ByteLevelText text;
  auto ids = text.encode("<user>hé", true);
  EXPECT_EQ(ids, (std::vector<int32_t>{ByteLevelText::kBos, ByteLevelText::kUser, 6 + 'h', 6 + 0xC3, 6 + 0xA9}));
  EXPECT_EQ(text.decode(ids, false), "<bos><user>hé");
  EXPECT_EQ(text.decode(ids, true), "hé");
  EXPECT_THROW(text.encode("\xC3", false), Error);
  EXPECT_THROW(text.decode(std::vector<int32_t>{999}, false), Error);
}

TEST(PrometheusText, HistogramAndCounters) {
  runtime::SchedulerMetrics m;
  m.time_to_first_token.observe(0.003);  // lands in le=0.005
  m.time_to_first_token.observe(0.005);  // bounds are inclusive
  m.time_to_first_token.observe(9999);   // only +Inf
  m.add_generation_tokens(12);
  m.count_finished("length");
  std::string text = render_prometheus(m, {3, 2, 100}, "my \"model\"");
  auto has = [&](const std::string& line) { return text.find(line + "\n") != std::string::npos; };
  const std::string labels = R"(model_name="my \"model\"")";
  EXPECT_TRUE(has("vllm:num_requests_running{" + labels + "} 3"));
  EXPECT_TRUE(has("vllm:num_requests_waiting{" + labels + "} 2"));
  EXPECT_TRUE(has("vllm:generation_tokens_total{" + labels + "} 12"));
  EXPECT_TRUE(has("vllm:request_success_total{" + labels + R"(,finished_reason="length"} 1)"));
  EXPECT_TRUE(has("vllm:request_success_total{" + labels + R"(,finished_reason="stop"} 0)"));
  EXPECT_TRUE(has("vllm:time_to_first_token_seconds_bucket{" + labels + R"(,le="0.001"} 0)"));
  EXPECT_TRUE(has("vllm:time_to_first_token_seconds_bucket{" + labels + R"(,le="0.005"} 2)"));
  EXPECT_TRUE(has("vllm:time_to_first_token_seconds_bucket{" + labels + R"(,le="2560"} 2)"));
  EXPECT_TRUE(has("vllm:time_to_first_token_seconds_bucket{" + labels + R"(,le="+Inf"} 3)"));
  EXPECT_TRUE(has("vllm:time_to_first_token_seconds_count{" + labels + "} 3"));
  EXPECT_TRUE(has("vllm:time_to_first_token_seconds_sum{" + labels + "} 9999.008"));
  EXPECT_TRUE(has("# TYPE vllm:time_to_first_token_seconds histogram"));
}

TEST(PrometheusText, SpeculativeDecodingCountersAsVllmNamesThem) {
  runtime::SchedulerMetrics m;
  m.count_draft(5);
  m.count_accepted(3);
  m.count_draft(5);
  m.count_accepted(1);
  std::string text = render_prometheus(m, {0, 0, 0}, "m");
  auto has = [&](const std::string& line) { return text.find(line + "\n") != std::string::npos; };
  const std::string labels = R"(model_name="m")";
  EXPECT_TRUE(has("vllm:spec_decode_num_drafts_total{" + labels + "} 2"));
  EXPECT_TRUE(has("vllm:spec_decode_num_draft_tokens_total{" + labels + "} 10"));
  EXPECT_TRUE(has("vllm:spec_decode_num_accepted_tokens_total{" + labels + "} 4"));
  EXPECT_TRUE(has("vllm:spec_decode_num_accepted_tokens_per_pos_total{" + labels + R"(,position="0"} 2)"));
  EXPECT_TRUE(has("vllm:spec_decode_num_accepted_tokens_per_pos_total{" + labels + R"(,position="1"} 1)"));
  EXPECT_TRUE(has("vllm:spec_decode_num_accepted_tokens_per_pos_total{" + labels + R"(,position="2"} 1)"));
  EXPECT_TRUE(has("vllm:spec_decode_num_accepted_tokens_per_pos_total{" + labels + R"(,position="4"} 0)"));
  EXPECT_EQ(text.find(R"(position="5")"), std::string::npos);
}

}  // namespace
}  // namespace fp4serve::server
