#include "text/tokenizer.h"

#include <deque>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "base/error.h"
#include "text/added_vocabulary.h"
#include "text/bpe_model.h"
#include "text/byte_level.h"
#include "text/pre_tokenizer.h"
#include "text/utf8.h"

namespace fp4serve::text {

namespace {

bool is_null_or_empty_sequence(const nlohmann::json& value, const char* list_key) {
  if (value.is_null()) return true;
  return value.is_object() && value.value("type", "") == "Sequence" && value.contains(list_key) &&
         (*value.find(list_key)).is_array() && (*value.find(list_key)).empty();
}

bool flag(const nlohmann::json& token, const char* key, const std::string& where) {
  const auto it = token.find(key);
  if (it == token.end() || it->is_null()) return false;
  if (!it->is_boolean()) fail("{}.{}: expected true or false", where, key);
  return it->get<bool>();
}

std::vector<AddedToken> parse_added_tokens(const nlohmann::json& root, const BpeModel& model, const std::string& origin) {
  std::vector<AddedToken> tokens;
  const auto list = root.find("added_tokens");
  if (list == root.end() || list->is_null()) return tokens;
  if (!list->is_array()) fail("{}: added_tokens: expected an array", origin);
  std::unordered_map<std::string, size_t> by_content;
  std::unordered_map<uint32_t, size_t> by_id;
  for (size_t i = 0; i < list->size(); ++i) {
    const nlohmann::json& t = (*list)[i];
    const std::string where = fmt::format("{}: added_tokens[{}]", origin, i);
    if (!t.is_object()) fail("{}: expected an object", where);
    if (!t.contains("id") || !t["id"].is_number_unsigned() || t["id"].get<uint64_t>() >= (uint64_t{1} << 31))
      fail("{}.id: expected a token id", where);
    if (!t.contains("content") || !t["content"].is_string() || t["content"].get<std::string>().empty())
      fail("{}.content: expected a non-empty string", where);
    AddedToken token;
    token.id = t["id"].get<uint32_t>();
    token.content = t["content"].get<std::string>();
    check_utf8(token.content, where + ".content");
    token.special = flag(t, "special", where);
    token.normalized = flag(t, "normalized", where);
    token.lstrip = flag(t, "lstrip", where);
    token.rstrip = flag(t, "rstrip", where);
    token.single_word = flag(t, "single_word", where);
    if (by_content.count(token.content)) fail("{}: '{}' is listed twice", where, token.content);
    if (by_id.count(token.id)) fail("{}: id {} is already used by '{}'", where, token.id, tokens[by_id[token.id]].content);
    if (const auto in_vocab = model.token_to_id(token.content); in_vocab && *in_vocab != token.id)
      fail("{}: '{}' has id {} but the vocabulary gives it id {}", where, token.content, token.id, *in_vocab);
    if (token.id < model.tokens().size() && !model.tokens()[token.id].empty() && model.tokens()[token.id] != token.content)
      fail("{}: id {} of '{}' belongs to vocabulary token '{}'", where, token.id, token.content, model.tokens()[token.id]);
    by_content[token.content] = tokens.size();
    by_id[token.id] = tokens.size();
    tokens.push_back(std::move(token));
  }
  return tokens;
}

// What Hugging Face's ByteLevel decoder makes of one token: the bytes its
// characters stand for, or, if some character is outside the byte-level
// alphabet (e.g. "<｜User｜>"), the token's own UTF-8.
std::string decoded_bytes(const std::string& token) {
  if (auto bytes = byte_level_to_bytes(token)) return std::move(*bytes);
  return token;
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open tokenizer file", path);
  std::ostringstream content;
  content << in.rdbuf();
  if (!in.good() && !in.eof()) fail("{}: read error", path);
  return from_json(content.str(), path);
}

Tokenizer Tokenizer::from_json(std::string_view json, const std::string& origin) {
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(json);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", origin, e.what());
  }
  if (!root.is_object()) fail("{}: expected a JSON object (a Hugging Face tokenizer.json)", origin);
  if (!is_null_or_empty_sequence(root.value("normalizer", nlohmann::json()), "normalizers"))
    fail("{}: normalizer {} is not supported (byte-level BPE tokenizers have none)", origin, root["normalizer"].dump());
  for (const char* key : {"truncation", "padding"}) {
    if (root.contains(key) && !root[key].is_null()) fail("{}: {} must be null (it would change what encode returns)", origin, key);
  }
  const nlohmann::json decoder = root.value("decoder", nlohmann::json());
  if (!decoder.is_object() || decoder.value("type", "") != "ByteLevel")
    fail("{}: decoder {} is not supported (need ByteLevel)", origin, decoder.dump());
  if (!root.contains("model")) fail("{}: no \"model\"", origin);
  if (!root.contains("pre_tokenizer") || root["pre_tokenizer"].is_null())
    fail("{}: no pre_tokenizer; byte-level BPE needs a ByteLevel pre-tokenizer", origin);

  Tokenizer result;
  result.model_ = std::make_unique<BpeModel>(BpeModel::from_json(root["model"], origin + ": model"));
  result.pre_tokenizer_ = std::make_unique<PreTokenizer>(PreTokenizer::from_json(root["pre_tokenizer"], origin + ": pre_tokenizer"));
  std::vector<AddedToken> added = parse_added_tokens(root, *result.model_, origin);

  result.token_strings_ = result.model_->tokens();
  for (const AddedToken& token : added) {
    if (token.id >= result.token_strings_.size()) result.token_strings_.resize(token.id + 1);
    result.token_strings_[token.id] = token.content;
  }
  result.special_.assign(result.token_strings_.size(), false);
  for (const AddedToken& token : added) result.special_[token.id] = token.special;
  result.token_bytes_.reserve(result.token_strings_.size());
  for (const std::string& token : result.token_strings_) result.token_bytes_.push_back(decoded_bytes(token));
  result.added_ = std::make_unique<AddedVocabulary>(std::move(added));
  return result;
}

void Tokenizer::encode(std::string_view text, std::vector<uint32_t>& ids) const {
  check_utf8(text, "text to tokenize");
  std::vector<TextSegment> segments;
  added_->split(text, segments);
  std::vector<std::string_view> words;
  std::deque<std::string> storage;
  for (const TextSegment& segment : segments) {
    if (segment.token_id >= 0) {
      ids.push_back(static_cast<uint32_t>(segment.token_id));
      continue;
    }
    words.clear();
    pre_tokenizer_->split(segment.text, words, storage);
    for (std::string_view word : words) model_->encode_word(word, ids);
  }
}

std::vector<uint32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<uint32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  encode(text, ids);
  return ids;
}

void Tokenizer::check_id(uint32_t id) const {
  if (id >= token_bytes_.size() || token_strings_[id].empty())
    fail("token id {} is not in the vocabulary (size {})", id, token_bytes_.size());
}

std::string Tokenizer::decode(std::span<const uint32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  for (uint32_t id : ids) {
    check_id(id);
    if (skip_special_tokens && special_[id]) continue;
    bytes += token_bytes_[id];
  }
  if (find_invalid_utf8(bytes) == std::string::npos) return bytes;
  return utf8_lossy(bytes);
}

const std::string& Tokenizer::token_bytes(uint32_t id) const {
  check_id(id);
  return token_bytes_[id];
}

const std::string& Tokenizer::token_string(uint32_t id) const {
  check_id(id);
  return token_strings_[id];
}

std::optional<uint32_t> Tokenizer::token_to_id(std::string_view token) const {
  for (const AddedToken& added : added_->tokens()) {
    if (added.content == token) return added.id;
  }
  return model_->token_to_id(token);
}

bool Tokenizer::is_special(uint32_t id) const {
  check_id(id);
  return special_[id];
}

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(&tokenizer), skip_special_tokens_(skip_special_tokens) {}

std::string IncrementalDecoder::push(uint32_t id) {
  if (skip_special_tokens_ && tokenizer_->is_special(id)) return {};
  pending_ += tokenizer_->token_bytes(id);
  const size_t ready = utf8_emittable_prefix(pending_);
  std::string out = utf8_lossy(std::string_view(pending_).substr(0, ready));
  pending_.erase(0, ready);
  return out;
}

std::string IncrementalDecoder::finish() {
  std::string out = utf8_lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace fp4serve::text
