// Fuzzes the tokenizer on a small byte-level BPE built here (DeepSeek's
// pre-tokenizer, a few merges and added tokens): valid UTF-8 must round-trip
// through encode and decode, invalid UTF-8 must throw fp4serve::Error, and the
// incremental decoder must agree with decode on any id sequence.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "base/error.h"
#include "text/byte_level.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace {

using fp4serve::text::Tokenizer;

const Tokenizer& fuzz_tokenizer() {
  static const Tokenizer tokenizer = [] {
    nlohmann::json vocab = nlohmann::json::object();
    uint32_t next = 0;
    for (int b = 0; b < 256; ++b) vocab[fp4serve::text::bytes_to_byte_level(std::string(1, static_cast<char>(b)))] = next++;
    nlohmann::json merges = nlohmann::json::array();
    for (const char* pair : {"t h", "th e", "Ġ t", "Ġt h", "Ġth e", "i n", "in g", "Ġ Ġ", "ĠĠ ĠĠ", "1 2", "12 3", "ä ½"}) {
      const std::string s(pair);
      const size_t space = s.find(' ');
      vocab[s.substr(0, space) + s.substr(space + 1)] = next++;
      merges.push_back(s);
    }
    nlohmann::json added = nlohmann::json::array();
    for (const char* token : {"<｜User｜>", "<｜Assistant｜>", "<think>", "</think>", "｜DSML｜"}) {
      added.push_back({{"id", next++}, {"content", token}, {"special", true}, {"normalized", false}});
    }
    added.push_back({{"id", next++}, {"content", "<think>x"}, {"special", false}, {"normalized", true}});
    const nlohmann::json split = {{"type", "Split"}, {"behavior", "Isolated"}, {"invert", false}};
    auto regex = [&](const char* pattern) {
      nlohmann::json s = split;
      s["pattern"] = {{"Regex", pattern}};
      return s;
    };
    const nlohmann::json config = {
        {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}},
        {"added_tokens", added},
        {"pre_tokenizer",
         {{"type", "Sequence"},
          {"pretokenizers",
           {regex("\\p{N}{1,3}"), regex("[一-龥぀-ゟ゠-ヿ]+"),
            regex("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
                  "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"),
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
        {"decoder", {{"type", "ByteLevel"}}}};
    return Tokenizer::from_json(config.dump(), "fuzz tokenizer");
  }();
  return tokenizer;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Tokenizer& tokenizer = fuzz_tokenizer();
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (fp4serve::text::find_invalid_utf8(text) == std::string::npos) {
    const auto ids = tokenizer.encode(text);
    if (tokenizer.decode(ids) != text) __builtin_trap();
  } else {
    bool threw = false;
    try {
      tokenizer.encode(text);
    } catch (const fp4serve::Error&) {
      threw = true;
    }
    if (!threw) __builtin_trap();
  }
  // The bytes as ids: streaming must give exactly what decode gives.
  std::vector<uint32_t> ids;
  for (size_t i = 0; i + 1 < size; i += 2) ids.push_back((data[i] | (data[i + 1] << 8)) % tokenizer.vocab_size());
  fp4serve::text::IncrementalDecoder stream(tokenizer);
  std::string streamed;
  for (uint32_t id : ids) {
    const std::string piece = stream.push(id);
    if (fp4serve::text::find_invalid_utf8(piece) != std::string::npos) __builtin_trap();
    streamed += piece;
  }
  streamed += stream.finish();
  if (streamed != tokenizer.decode(ids)) __builtin_trap();
  return 0;
}
