#include "text/pre_tokenizer.h"

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace fp4serve::text {

namespace {

// GPT-2's word regex, which ByteLevel applies when use_regex is true.
constexpr std::string_view kGpt2WordRegex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

SplitBehavior parse_behavior(const nlohmann::json& value, const std::string& origin) {
  if (!value.is_string()) fail("{}.behavior: expected a string", origin);
  const std::string name = value.get<std::string>();
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  fail("{}.behavior: unknown split behavior '{}'", origin, name);
}

bool optional_bool(const nlohmann::json& object, const char* key, bool fallback, const std::string& origin) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail("{}.{}: expected true or false", origin, key);
  return it->get<bool>();
}

struct Span {
  size_t begin, end;
  bool is_match;
};

}  // namespace

PreTokenizer PreTokenizer::from_json(const nlohmann::json& config, const std::string& origin) {
  PreTokenizer result;
  std::vector<std::pair<const nlohmann::json*, std::string>> steps;
  if (!config.is_object()) fail("{}: expected an object", origin);
  if (config.value("type", "") == "Sequence") {
    const auto it = config.find("pretokenizers");
    if (it == config.end() || !it->is_array()) fail("{}.pretokenizers: expected an array", origin);
    for (size_t i = 0; i < it->size(); ++i) steps.emplace_back(&(*it)[i], fmt::format("{}.pretokenizers[{}]", origin, i));
  } else {
    steps.emplace_back(&config, origin);
  }
  bool have_byte_level = false;
  for (const auto& [step, where] : steps) {
    if (!step->is_object() || !step->contains("type")) fail("{}: expected an object with a \"type\"", where);
    const std::string type = step->value("type", "");
    if (have_byte_level) fail("{}: '{}' after ByteLevel; ByteLevel must be the last pre-tokenizer", where, type);
    if (type == "Split") {
      SplitStep split;
      const auto pattern = step->find("pattern");
      if (pattern == step->end() || !pattern->is_object()) fail("{}.pattern: expected {{\"Regex\": ...}} or {{\"String\": ...}}", where);
      if (pattern->contains("Regex") && (*pattern)["Regex"].is_string()) {
        split.regex = std::make_unique<Pcre2Regex>(pcre2_pattern_from_oniguruma((*pattern)["Regex"].get<std::string>()),
                                                   where + ".pattern.Regex");
      } else if (pattern->contains("String") && (*pattern)["String"].is_string()) {
        split.literal = (*pattern)["String"].get<std::string>();
        if (split.literal.empty()) fail("{}.pattern.String: empty pattern", where);
      } else {
        fail("{}.pattern: expected {{\"Regex\": string}} or {{\"String\": string}}", where);
      }
      split.behavior = parse_behavior(step->value("behavior", nlohmann::json()), where);
      split.invert = optional_bool(*step, "invert", false, where);
      result.splits_.push_back(std::move(split));
    } else if (type == "ByteLevel") {
      have_byte_level = true;
      result.add_prefix_space_ = optional_bool(*step, "add_prefix_space", true, where);
      if (optional_bool(*step, "use_regex", true, where)) {
        result.byte_level_split_ = std::make_unique<SplitStep>();
        result.byte_level_split_->regex =
            std::make_unique<Pcre2Regex>(pcre2_pattern_from_oniguruma(kGpt2WordRegex), where + " (GPT-2 regex)");
      }
    } else {
      fail("{}: unsupported pre-tokenizer type '{}' (supported: Sequence, Split, ByteLevel)", where, type);
    }
  }
  if (!have_byte_level) fail("{}: no ByteLevel step; only byte-level BPE tokenizers are supported", origin);
  return result;
}

void PreTokenizer::apply_split(const SplitStep& step, std::string_view piece, std::vector<std::string_view>& out) const {
  // The pattern cuts the piece into alternating gaps and matches covering it.
  std::vector<Span> spans;
  size_t previous = 0;
  auto on_match = [&](size_t begin, size_t end) {
    if (begin > previous) spans.push_back({previous, begin, false});
    spans.push_back({begin, end, true});
    previous = end;
  };
  if (step.regex) {
    step.regex->for_each_match(piece, on_match);
  } else {
    for (size_t at = piece.find(step.literal); at != std::string_view::npos; at = piece.find(step.literal, at)) {
      on_match(at, at + step.literal.size());
      at += step.literal.size();
    }
  }
  if (previous < piece.size()) spans.push_back({previous, piece.size(), false});
  if (step.invert) {
    for (Span& s : spans) s.is_match = !s.is_match;
  }

  std::vector<Span> kept;
  switch (step.behavior) {
    case SplitBehavior::kIsolated:
      kept = std::move(spans);
      break;
    case SplitBehavior::kRemoved:
      for (const Span& s : spans)
        if (!s.is_match) kept.push_back(s);
      break;
    case SplitBehavior::kMergedWithPrevious: {
      // A match (not preceded by a match) joins the piece before it.
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !kept.empty()) {
          kept.back().end = s.end;
        } else {
          kept.push_back(s);
        }
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      // A match (not followed by a match) joins the piece after it: the mirror image.
      bool next_match = false;
      std::vector<Span> reversed;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !next_match && !reversed.empty()) {
          reversed.back().begin = it->begin;
        } else {
          reversed.push_back(*it);
        }
        next_match = it->is_match;
      }
      kept.assign(reversed.rbegin(), reversed.rend());
      break;
    }
    case SplitBehavior::kContiguous: {
      // Runs of matches, and runs of gaps, each become one piece.
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !kept.empty()) {
          kept.back().end = s.end;
        } else {
          kept.push_back(s);
        }
        previous_match = s.is_match;
      }
      break;
    }
  }
  for (const Span& s : kept)
    if (s.end > s.begin) out.push_back(piece.substr(s.begin, s.end - s.begin));
}

void PreTokenizer::split(std::string_view segment, std::vector<std::string_view>& words,
                         std::deque<std::string>& storage) const {
  if (segment.empty()) return;
  std::vector<std::string_view> pieces{segment};
  std::vector<std::string_view> next;
  for (const SplitStep& step : splits_) {
    next.clear();
    for (std::string_view piece : pieces) apply_split(step, piece, next);
    pieces.swap(next);
  }
  for (std::string_view piece : pieces) {
    if (add_prefix_space_ && piece.front() != ' ') {
      std::string& spaced = storage.emplace_back(1, ' ');
      spaced.append(piece);
      piece = spaced;
    }
    if (byte_level_split_) {
      apply_split(*byte_level_split_, piece, words);
    } else {
      words.push_back(piece);
    }
  }
}

}  // namespace fp4serve::text
