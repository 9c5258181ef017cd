// JSON parsing for file headers we do not trust. nlohmann's parser keeps the last
// of two equal keys without a word; a safetensors header or shard index with a
// tensor named twice must be an error instead, so this parser rejects duplicate
// keys, bounds the nesting depth, and turns the library's exceptions into Error
// naming the file.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace fp4serve {

// Deeper than any header we read (safetensors: 3 levels, index: 3) with room for
// extensions in metadata, and shallow enough that nothing deep is ever built.
inline constexpr int kMaxJsonDepth = 32;

// Parses `text` as one JSON value whose top level must be an object. `label`
// (the file) and `what` ("header", "index") prefix every error message.
nlohmann::json parse_strict_json_object(std::string_view text, const std::string& label, std::string_view what);

}  // namespace fp4serve
