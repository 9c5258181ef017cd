#include "server/byte_level_text.h"

#include <array>

#include "base/error.h"
#include "text/utf8.h"

namespace fp4serve::server {
namespace {

constexpr std::array<std::string_view, ByteLevelText::kFirstByteToken> kSpecial = {
    "<bos>", "<eos>", "<user>", "<assistant>", "<think>", "</think>"};
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// The UTF-8 sequence starting at s[i]: complete, incomplete (the string ends
// inside a valid prefix) or invalid; `length` covers the character, or the
// maximal valid prefix that becomes one U+FFFD (Unicode's recommended
// practice, which is also what Rust's from_utf8_lossy does).
struct Utf8Sequence {
  enum { kComplete, kIncomplete, kInvalid } status;
  size_t length;
};

Utf8Sequence utf8_sequence(std::string_view s, size_t i) {
  auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) return {Utf8Sequence::kComplete, 1};
  size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
  if (b >= 0xC2 && b <= 0xDF) length = 2;
  else if (b == 0xE0) length = 3, low = 0xA0;
  else if (b == 0xED) length = 3, high = 0x9F;
  else if (b >= 0xE1 && b <= 0xEF) length = 3;
  else if (b == 0xF0) length = 4, low = 0x90;
  else if (b == 0xF4) length = 4, high = 0x8F;
  else if (b >= 0xF1 && b <= 0xF3) length = 4;
  else return {Utf8Sequence::kInvalid, 1};
  size_t k = 1;
  while (k < length && i + k < s.size()) {
    auto c = static_cast<unsigned char>(s[i + k]);
    if (k == 1 ? (c < low || c > high) : (c & 0xC0) != 0x80) return {Utf8Sequence::kInvalid, k};
    ++k;
  }
  return {k == length ? Utf8Sequence::kComplete : Utf8Sequence::kIncomplete, k};
}

class ByteStreamingDecoder : public StreamingDecoder {
 public:
  ByteStreamingDecoder(const ByteLevelText& text, bool skip_special) : text_(text), skip_special_(skip_special) {}

  std::string push(int32_t token) override {
    if (token < ByteLevelText::kFirstByteToken) {
      if (skip_special_) return {};
      std::string out = flush_invalid();
      return out + text_.token_bytes(token);
    }
    pending_ += text_.token_bytes(token);
    return take_complete(false);
  }
  std::string finish() override { return take_complete(true); }

 private:
  // Pending bytes before a special token can never be completed.
  std::string flush_invalid() { return take_complete(true); }

  std::string take_complete(bool at_end) {
    std::string out;
    size_t i = 0;
    while (i < pending_.size()) {
      Utf8Sequence seq = utf8_sequence(pending_, i);
      if (seq.status == Utf8Sequence::kComplete) {
        out.append(pending_, i, seq.length);
      } else if (seq.status == Utf8Sequence::kIncomplete && !at_end) {
        break;
      } else {
        out += kReplacement;
      }
      i += seq.length;
    }
    pending_.erase(0, i);
    return out;
  }

  const ByteLevelText& text_;
  bool skip_special_;
  std::string pending_;
};

class ThinkSplittingParser : public OutputParser {
 public:
  explicit ThinkSplittingParser(bool thinking) : in_reasoning_(thinking) {}

  OutputDelta push(std::string_view text) override {
    held_ += text;
    OutputDelta delta;
    static constexpr std::string_view kClose = "</think>";
    if (in_reasoning_) {
      size_t close = held_.find(kClose);
      if (close != std::string::npos) {
        delta.reasoning_content = held_.substr(0, close);
        held_.erase(0, close + kClose.size());
        in_reasoning_ = false;
      } else {
        // Keep back a tail that could be the start of </think>.
        size_t keep = 0;
        for (size_t n = std::min(held_.size(), kClose.size() - 1); n > 0; --n) {
          if (std::string_view(held_).substr(held_.size() - n) == kClose.substr(0, n)) {
            keep = n;
            break;
          }
        }
        delta.reasoning_content = held_.substr(0, held_.size() - keep);
        held_.erase(0, held_.size() - keep);
        return delta;
      }
    }
    delta.content = held_;
    held_.clear();
    return delta;
  }

  OutputDelta finish() override {
    OutputDelta delta;
    (in_reasoning_ ? delta.reasoning_content : delta.content) = held_;
    held_.clear();
    return delta;
  }
  bool saw_tool_calls() const override { return false; }

 private:
  bool in_reasoning_;
  std::string held_;
};

std::string content_text(const nlohmann::ordered_json& message) {
  auto it = message.find("content");
  if (it == message.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  std::string joined;
  for (const auto& part : *it) {
    if (!joined.empty()) joined += "\n\n";
    joined += part["text"].get<std::string>();
  }
  return joined;
}

}  // namespace

std::vector<int32_t> ByteLevelText::encode(std::string_view text, bool add_special_tokens) const {
  if (size_t bad = text::find_invalid_utf8(text); bad != std::string_view::npos) {
    fail("text is not valid UTF-8 (byte offset {})", bad);
  }
  std::vector<int32_t> ids;
  if (add_special_tokens) ids.push_back(kBos);
  for (size_t i = 0; i < text.size();) {
    bool matched = false;
    for (int32_t s = 0; s < kFirstByteToken && !matched; ++s) {
      if (text.substr(i, kSpecial[s].size()) == kSpecial[s]) {
        ids.push_back(s);
        i += kSpecial[s].size();
        matched = true;
      }
    }
    if (!matched) ids.push_back(kFirstByteToken + static_cast<unsigned char>(text[i++]));
  }
  return ids;
}

std::string ByteLevelText::token_bytes(int32_t token) const {
  FP4SERVE_CHECK(token >= 0 && token < kVocabSize, "token id {} is outside the vocabulary of {}", token, kVocabSize);
  if (token < kFirstByteToken) return std::string(kSpecial[token]);
  return std::string(1, static_cast<char>(token - kFirstByteToken));
}

std::string ByteLevelText::decode(std::span<const int32_t> tokens, bool skip_special_tokens) const {
  ByteStreamingDecoder decoder(*this, skip_special_tokens);
  std::string out;
  for (int32_t t : tokens) {
    token_bytes(t);  // range check
    out += decoder.push(t);
  }
  return out + decoder.finish();
}

std::unique_ptr<StreamingDecoder> ByteLevelText::streaming_decoder(bool skip_special_tokens) const {
  return std::make_unique<ByteStreamingDecoder>(*this, skip_special_tokens);
}

std::string ByteLevelText::render_chat(const ChatRequest& request) const {
  std::string prompt(kSpecial[kBos]);
  std::string system;
  if (request.render_tools) system += "\n\n## Tools\n" + request.tools.dump();
  if (request.response_format == "json_object") system += "\n\n## Response Format: a JSON object";
  bool system_written = false;
  for (const auto& m : request.messages) {
    const std::string role = m["role"];
    if (role == "system" || role == "developer") {
      prompt += content_text(m) + system;
      system_written = true;
    } else if (role == "user") {
      prompt += std::string(kSpecial[kUser]) + content_text(m);
    } else if (role == "tool") {
      prompt += std::string(kSpecial[kUser]) + "<tool_result>" + content_text(m) + "</tool_result>";
    } else {
      prompt += std::string(kSpecial[kAssistant]) + std::string(kSpecial[kThinkClose]) + content_text(m) +
                std::string(kSpecial[kEos]);
    }
  }
  if (!system_written && !system.empty()) prompt.insert(kSpecial[kBos].size(), system);
  if (request.add_generation_prompt) {
    prompt += kSpecial[kAssistant];
    prompt += request.thinking == ThinkingMode::kThinking ? kSpecial[kThinkOpen] : kSpecial[kThinkClose];
  }
  return prompt;
}

std::unique_ptr<OutputParser> ByteLevelText::output_parser(ThinkingMode mode, bool tools) const {
  return std::make_unique<ThinkSplittingParser>(mode == ThinkingMode::kThinking);
}

std::vector<int32_t> ByteLevelText::word_tokens() {
  std::vector<int32_t> ids = {kFirstByteToken + ' '};
  for (char c = 'a'; c <= 'z'; ++c) ids.push_back(kFirstByteToken + c);
  return ids;
}

}  // namespace fp4serve::server
