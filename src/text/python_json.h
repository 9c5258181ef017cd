// JSON text exactly as Python's json.dumps(value, ensure_ascii=False) writes
// it, which DeepSeek's prompt renderer embeds in prompts (tool schemas,
// non-string tool arguments, response formats): ", " and ": " separators, keys
// in their original order, floats in Python's repr, non-ASCII characters as
// they are. nlohmann's dump() differs in separators and float spelling.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace fp4serve::text {

std::string python_json_dumps(const nlohmann::ordered_json& value);

// A JSON string literal with Python's escapes (\n, \", \u001b, ...; non-ASCII kept).
void append_python_json_string(std::string& out, std::string_view value);
// The same escapes without the quotes: pieces of one string escape piece by piece.
void append_python_json_escaped(std::string& out, std::string_view value);

}  // namespace fp4serve::text
