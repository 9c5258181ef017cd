// UTF-8 checks the server needs at its edges: request bodies must be valid,
// and text it writes into JSON (error messages quoting input, token strings)
// must be made valid, since nlohmann's dump() throws on invalid UTF-8.
#pragma once

#include <string>
#include <string_view>

namespace fp4serve::server {

// Offset of the first byte that breaks UTF-8 (overlongs, surrogates and code
// points past U+10FFFF included), or npos when `text` is valid.
size_t first_invalid_utf8(std::string_view text);

// `text` with every byte that breaks UTF-8 replaced by U+FFFD.
std::string replace_invalid_utf8(std::string_view text);

}  // namespace fp4serve::server
