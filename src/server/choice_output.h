// Turns one choice's stream of sampled tokens into what the client sees:
// detokenized text (never a partial UTF-8 character), stop strings applied
// (held back across token boundaries, never emitted), split into reasoning /
// content / tool calls for chat, logprob entries, token counts and the finish
// reason. One per choice; used by both the streaming and the plain response.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/scheduler.h"
#include "server/serving_text.h"
#include "server/stop_strings.h"

namespace fp4serve::server {

struct LogprobEntry {
  std::string token_bytes;
  float logprob = 0;
  std::vector<std::pair<std::string, float>> top;  // (token bytes, logprob), most likely first
};

// `token` as a JSON string: its bytes, each maximal ill-formed subpart (and an incomplete
// tail) as one U+FFFD, as Python's bytes.decode(errors="replace") does (the exact bytes go in
// the `bytes` list beside it).
std::string printable_token(const std::string& bytes);

class ChoiceOutput {
 public:
  // `parser` is null for /v1/completions (plain text).
  ChoiceOutput(const ServingText& text, const GenerationOptions& options, std::vector<int32_t> stop_token_ids,
               std::unique_ptr<OutputParser> parser);

  struct Delta {
    OutputDelta text;  // completions use text.content only
    std::vector<LogprobEntry> logprobs;
    bool empty() const { return text.empty() && logprobs.empty(); }
  };

  // Consumes tokens until a stop string is seen (the rest are ignored).
  Delta push(std::span<const runtime::SampledToken> tokens);
  // The end of generation: releases held-back text and fixes the finish reason.
  Delta finish(const runtime::Finish& finish);

  bool stop_string_matched() const { return stops_.matched(); }
  int64_t completion_tokens() const { return completion_tokens_; }
  int64_t reasoning_tokens() const { return reasoning_tokens_; }
  // "stop", "length", "tool_calls" or "abort"; valid after finish().
  const std::string& finish_reason() const { return finish_reason_; }
  // The matched stop string or stop token id, null for EOS and length.
  const nlohmann::json& stop_reason() const { return stop_reason_; }

 private:
  void emit(const std::string& text, Delta& delta);

  const ServingText& text_;
  std::vector<int32_t> stop_token_ids_;
  int32_t eos_;
  std::unique_ptr<StreamingDecoder> decoder_;
  StopStringMatcher stops_;
  std::unique_ptr<OutputParser> parser_;
  bool want_logprobs_;
  int64_t completion_tokens_ = 0;
  int64_t reasoning_tokens_ = 0;
  bool in_reasoning_ = false;
  std::string finish_reason_;
  nlohmann::json stop_reason_;
};

}  // namespace fp4serve::server
