#include "text/output_parser.h"

#include <algorithm>

#include "text/python_json.h"

namespace fp4serve::text {

namespace {

// DeepSeek's encoder writes a blank line before the block; models also start
// it without one (right after </think>, most often), which must not leak.
constexpr std::string_view kToolCallsAfterBlankLine = "\n\n<｜DSML｜tool_calls";
constexpr std::string_view kToolCallsStart = "<｜DSML｜tool_calls";
constexpr std::string_view kToolCallsEnd = "</｜DSML｜tool_calls>";
constexpr std::string_view kInvokeStart = "<｜DSML｜invoke name=\"";
constexpr std::string_view kInvokeEnd = "</｜DSML｜invoke>";
constexpr std::string_view kParameterStart = "<｜DSML｜parameter name=\"";
constexpr std::string_view kParameterEnd = "</｜DSML｜parameter>";

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

}  // namespace

OutputParser::OutputParser(ThinkingMode mode, std::string tool_call_id_prefix)
    : id_prefix_(std::move(tool_call_id_prefix)), state_(mode == ThinkingMode::kThinking ? State::kReasoning : State::kContent) {}

CompletionDelta OutputParser::push(std::string_view text) {
  pending_.append(text);
  CompletionDelta delta;
  while (step(false, delta) == Step::kProgress) {
  }
  return delta;
}

CompletionDelta OutputParser::finish() {
  CompletionDelta delta;
  while (step(true, delta) == Step::kProgress) {
  }
  return delta;
}

bool OutputParser::in_block() const {
  return state_ != State::kReasoning && state_ != State::kContent && state_ != State::kAfterBlock &&
         state_ != State::kTrailing;
}

void OutputParser::consume(size_t n) {
  if (in_block()) block_text_.append(pending_, 0, n);
  pending_.erase(0, n);
  consumed_ += n;
}

void OutputParser::open_block(std::string_view marker) {
  block_text_ = std::string(marker);
  block_calls_.clear();
  state_ = State::kBlockOpen;
}

void OutputParser::emit_reasoning(CompletionDelta& delta, std::string_view text) {
  delta.reasoning_content.append(text);
  result_.reasoning_content.append(text);
}

void OutputParser::emit_content(CompletionDelta& delta, std::string_view text) {
  delta.content.append(text);
  result_.content.append(text);
}

void OutputParser::add_arguments(std::string_view text) { block_calls_.back().arguments.append(text); }

void OutputParser::add_value(std::string_view raw) {
  if (!value_is_string_) return add_arguments(raw);
  append_python_json_escaped(block_calls_.back().arguments, raw);
}

// The block closed: its calls become the message's, each sent as one delta.
void OutputParser::commit_block(CompletionDelta& delta) {
  for (ParsedToolCall& call : block_calls_) {
    const size_t index = result_.tool_calls.size();
    call.id = id_prefix_ + std::to_string(index);
    delta.tool_calls.push_back({index, call.id, call.name, call.arguments});
    result_.tool_calls.push_back(std::move(call));
  }
  block_calls_.clear();
  block_text_.clear();
}

void OutputParser::divert_to_content(CompletionDelta& delta) {
  emit_content(delta, block_text_);
  emit_content(delta, pending_);
  consumed_ += pending_.size();
  block_text_.clear();
  block_calls_.clear();
  pending_.clear();
  state_ = State::kTrailing;
}

OutputParser::Step OutputParser::malformed(CompletionDelta& delta, const std::string& problem) {
  if (result_.malformed.empty()) result_.malformed = "completion byte " + std::to_string(consumed_) + ": " + problem;
  divert_to_content(delta);
  return Step::kProgress;
}

void OutputParser::consume_text(size_t n, std::string* text) {
  *text = pending_.substr(0, n);
  consume(n);
}

// Text up to the earliest marker (empty ones are skipped). The longest end of
// pending_ that could begin a marker is held back, unless this is the end of the stream.
OutputParser::Outcome OutputParser::scan_text(bool final, std::initializer_list<std::string_view> markers, int* found,
                                              std::string* text) {
  size_t best = std::string::npos;
  *found = -1;
  int i = 0;
  for (std::string_view marker : markers) {
    const size_t at = marker.empty() ? std::string::npos : pending_.find(marker);
    if (at < best) {
      best = at;
      *found = i;
    }
    ++i;
  }
  if (*found >= 0) {
    consume_text(best, text);
    consume(std::data(markers)[*found].size());
    return Outcome::kMatched;
  }
  size_t hold = 0;
  if (!final) {
    for (std::string_view marker : markers) {
      if (marker.empty()) continue;
      for (size_t n = std::min(marker.size() - 1, pending_.size()); n > hold; --n) {
        if (std::string_view(pending_).substr(pending_.size() - n) == marker.substr(0, n)) {
          hold = n;
          break;
        }
      }
    }
  }
  consume_text(pending_.size() - hold, text);
  return final ? Outcome::kTruncated : Outcome::kNeedMore;
}

OutputParser::Outcome OutputParser::expect_one_of(bool final, std::initializer_list<std::string_view> options, int* chosen) {
  int i = 0;
  for (std::string_view option : options) {
    if (std::string_view(pending_).starts_with(option)) {
      *chosen = i;
      consume(option.size());
      return Outcome::kMatched;
    }
    ++i;
  }
  for (std::string_view option : options) {
    if (option.starts_with(pending_)) return final ? Outcome::kTruncated : Outcome::kNeedMore;
  }
  return Outcome::kMismatch;
}

// A name up to `terminator`; a newline before it breaks the grammar.
OutputParser::Outcome OutputParser::read_until(bool final, std::string_view terminator, std::string* field) {
  const size_t end = pending_.find(terminator);
  const size_t newline = pending_.find('\n');
  if (newline != std::string::npos && newline < end) return Outcome::kMismatch;
  if (end == std::string::npos) return final ? Outcome::kTruncated : Outcome::kNeedMore;
  *field = pending_.substr(0, end);
  consume(end + terminator.size());
  return Outcome::kMatched;
}

bool OutputParser::skip_space() {
  size_t n = 0;
  while (n < pending_.size() && is_space(pending_[n])) ++n;
  consume(n);
  return !pending_.empty();
}

OutputParser::Step OutputParser::step(bool final, CompletionDelta& delta) {
  int chosen = -1;
  std::string text;
  Outcome outcome = Outcome::kNeedMore;
  switch (state_) {
    case State::kReasoning:
    case State::kContent: {
      const bool reasoning = state_ == State::kReasoning;
      // In content, </think> is text like any other (the first index is never found).
      outcome = scan_text(final, {reasoning ? kThinkEndToken : std::string_view(), kToolCallsAfterBlankLine,
                                  kToolCallsStart, kEosToken},
                          &chosen, &text);
      if (reasoning) emit_reasoning(delta, text);
      else emit_content(delta, text);
      if (chosen == 0) state_ = State::kContent;
      if (chosen == 1) open_block(kToolCallsAfterBlankLine);
      if (chosen == 2) open_block(kToolCallsStart);
      if (chosen == 3) {
        result_.ended = true;
        state_ = State::kTrailing;
      }
      return outcome == Outcome::kMatched ? Step::kProgress : Step::kNeedMore;
    }

    case State::kBlockOpen:
      outcome = expect_one_of(final, {">"}, &chosen);
      if (outcome == Outcome::kMatched) state_ = State::kBetweenInvokes;
      if (outcome == Outcome::kMismatch) return malformed(delta, "expected '>' after <｜DSML｜tool_calls");
      break;

    case State::kBetweenInvokes:
      if (!skip_space()) break;
      outcome = expect_one_of(final, {kInvokeStart, kToolCallsEnd}, &chosen);
      if (outcome == Outcome::kMismatch) return malformed(delta, "expected <｜DSML｜invoke or </｜DSML｜tool_calls>");
      if (outcome == Outcome::kMatched && chosen == 0) state_ = State::kInvokeName;
      if (outcome == Outcome::kMatched && chosen == 1) {
        state_ = State::kAfterBlock;
        commit_block(delta);
      }
      break;

    case State::kInvokeName:
      outcome = read_until(final, "\">", &text);
      if (outcome == Outcome::kMismatch) return malformed(delta, "tool name not closed by '\">' on its line");
      if (outcome == Outcome::kMatched) {
        block_calls_.push_back({"", text, ""});
        parameter_names_.clear();
        state_ = State::kBetweenParameters;
      }
      break;

    case State::kBetweenParameters:
      if (!skip_space()) break;
      outcome = expect_one_of(final, {kParameterStart, kInvokeEnd}, &chosen);
      if (outcome == Outcome::kMismatch) return malformed(delta, "expected <｜DSML｜parameter or </｜DSML｜invoke>");
      if (outcome == Outcome::kMatched && chosen == 0) state_ = State::kParameterName;
      if (outcome == Outcome::kMatched && chosen == 1) {
        add_arguments(parameter_names_.empty() ? "{}" : "}");
        state_ = State::kBetweenInvokes;
      }
      break;

    case State::kParameterName:
      outcome = read_until(final, "\" string=\"", &field_);
      if (outcome == Outcome::kMismatch) return malformed(delta, "parameter name not followed by '\" string=\"' on its line");
      if (outcome == Outcome::kMatched) {
        if (std::find(parameter_names_.begin(), parameter_names_.end(), field_) != parameter_names_.end())
          return malformed(delta, "parameter '" + field_ + "' given twice");
        state_ = State::kParameterKind;
      }
      break;

    case State::kParameterKind:
      outcome = expect_one_of(final, {"true\">", "false\">"}, &chosen);
      if (outcome == Outcome::kMismatch) return malformed(delta, "parameter string flag must be \"true\" or \"false\"");
      if (outcome == Outcome::kMatched) {
        value_is_string_ = chosen == 0;
        std::string header = parameter_names_.empty() ? "{" : ", ";
        append_python_json_string(header, field_);
        header += ": ";
        if (value_is_string_) header += '"';
        parameter_names_.push_back(field_);
        add_arguments(header);
        state_ = State::kParameterValue;
      }
      break;

    case State::kParameterValue:
      outcome = scan_text(final, {kParameterEnd}, &chosen, &text);
      add_value(text);
      if (outcome == Outcome::kMatched) {
        add_arguments(value_is_string_ ? "\"" : "");
        state_ = State::kBetweenParameters;
      }
      break;

    case State::kAfterBlock:
      if (pending_.empty() && !final) return Step::kNeedMore;
      outcome = expect_one_of(final, {kEosToken}, &chosen);
      if (outcome == Outcome::kMismatch) return malformed(delta, "expected <｜end▁of▁sentence｜> after </｜DSML｜tool_calls>");
      if (outcome == Outcome::kMatched) {
        result_.ended = true;
        state_ = State::kTrailing;
      }
      break;

    case State::kTrailing:
      if (pending_.empty()) return Step::kNeedMore;
      if (result_.ended && result_.malformed.empty())
        result_.malformed = "completion byte " + std::to_string(consumed_) + ": text after <｜end▁of▁sentence｜>";
      emit_content(delta, pending_);
      consumed_ += pending_.size();
      pending_.clear();
      return Step::kNeedMore;
  }
  if (outcome == Outcome::kMatched) return Step::kProgress;
  if (final && (outcome == Outcome::kTruncated || outcome == Outcome::kNeedMore)) {
    // The stream ended inside markup: a block cut short is content, not a call.
    if (in_block() && result_.malformed.empty()) {
      result_.malformed = "completion byte " + std::to_string(consumed_) + ": the tool-call block was cut short";
    }
    divert_to_content(delta);
    return Step::kNeedMore;
  }
  return Step::kNeedMore;
}

ParsedCompletion parse_completion(std::string_view text, ThinkingMode mode, std::string tool_call_id_prefix) {
  OutputParser parser(mode, std::move(tool_call_id_prefix));
  parser.push(text);
  parser.finish();
  return parser.result();
}

}  // namespace fp4serve::text
