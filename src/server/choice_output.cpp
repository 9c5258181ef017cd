#include "server/choice_output.h"

#include <algorithm>

#include "text/utf8.h"

namespace fp4serve::server {

std::string printable_token(const std::string& bytes) { return text::utf8_lossy(bytes); }

ChoiceOutput::ChoiceOutput(const ServingText& text, const GenerationOptions& options,
                           std::vector<int32_t> stop_token_ids, std::unique_ptr<OutputParser> parser)
    : text_(text),
      stop_token_ids_(std::move(stop_token_ids)),
      eos_(text.eos_token()),
      // Chat output keeps special tokens: the parser needs </think> and the tool-call markup.
      decoder_(text.streaming_decoder(parser ? false : options.skip_special_tokens)),
      stops_(options.stop, options.include_stop_str_in_output),
      parser_(std::move(parser)),
      want_logprobs_(options.logprobs) {}

void ChoiceOutput::emit(const std::string& piece, Delta& delta) {
  if (piece.empty()) return;
  if (!parser_) {
    delta.text.content += piece;
    return;
  }
  OutputDelta d = parser_->push(piece);
  delta.text.reasoning_content += d.reasoning_content;
  delta.text.content += d.content;
  for (auto& call : d.tool_calls) delta.text.tool_calls.push_back(std::move(call));
}

ChoiceOutput::Delta ChoiceOutput::push(std::span<const runtime::SampledToken> tokens) {
  Delta delta;
  for (const auto& t : tokens) {
    if (stops_.matched()) break;
    ++completion_tokens_;
    const bool is_stop_token =
        std::find(stop_token_ids_.begin(), stop_token_ids_.end(), t.token) != stop_token_ids_.end();
    if (is_stop_token) continue;  // ends the stream; never part of the text
    if (want_logprobs_) {
      LogprobEntry entry;
      entry.token_bytes = text_.token_bytes(t.token);
      entry.logprob = t.logprob;
      for (const auto& alt : t.top_logprobs) entry.top.emplace_back(text_.token_bytes(alt.token), alt.logprob);
      delta.logprobs.push_back(std::move(entry));
    }
    size_t reasoning_before = delta.text.reasoning_content.size();
    emit(stops_.push(decoder_->push(t.token)), delta);
    // A token counts as reasoning while the parser is still inside the thinking block.
    if (delta.text.reasoning_content.size() > reasoning_before && delta.text.content.empty()) ++reasoning_tokens_;
  }
  return delta;
}

ChoiceOutput::Delta ChoiceOutput::finish(const runtime::Finish& finish) {
  Delta delta;
  if (!stops_.matched()) {
    emit(stops_.push(decoder_->finish()), delta);
    emit(stops_.finish(), delta);
  }
  if (parser_) {
    OutputDelta d = parser_->finish();
    delta.text.reasoning_content += d.reasoning_content;
    delta.text.content += d.content;
    for (auto& call : d.tool_calls) delta.text.tool_calls.push_back(std::move(call));
  }
  stop_reason_ = nullptr;
  if (stops_.matched()) {
    finish_reason_ = "stop";
    stop_reason_ = stops_.matched_stop();
  } else if (finish.reason == runtime::FinishReason::kStopToken) {
    finish_reason_ = "stop";
    if (finish.stop_token != eos_) stop_reason_ = finish.stop_token;
  } else if (finish.reason == runtime::FinishReason::kLength) {
    finish_reason_ = "length";
  } else {
    finish_reason_ = "abort";
  }
  if (finish_reason_ == "stop" && parser_ && parser_->saw_tool_calls()) finish_reason_ = "tool_calls";
  return delta;
}

}  // namespace fp4serve::server
