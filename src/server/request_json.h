// Request bodies to JSON with bounded work and memory. Every endpoint parses
// whatever a client sends, so the parse itself must not be the attack: nesting
// is bounded (kMaxJsonDepth), only the top-level fields the endpoint reads are
// kept (the others are checked for syntax, then dropped as they stream past),
// and building an object is linear in its keys (nlohmann's ordered_json checks
// each new key against all earlier ones, which is quadratic). Memory is then
// proportional to the fields read, and nothing beyond the one JSON value is
// accepted: a NUL byte or any other trailing byte is a 400, never cut off.
#pragma once

#include <nlohmann/json.hpp>

#include <span>
#include <string>
#include <string_view>

namespace fp4serve::server {

// Arrays and objects nested deeper than this are refused (400).
inline constexpr int kMaxJsonDepth = 256;

// The top-level fields an endpoint reads.
using FieldNames = std::span<const std::string_view>;

// Parses `body`, which must be one JSON object. Refusals (ApiError 400) name
// the byte offset: bytes that are not UTF-8, a NUL byte, malformed JSON or
// bytes after the value (with nlohmann's message), nesting beyond
// kMaxJsonDepth, a lone UTF-16 surrogate escape (\ud800 without its pair), or
// a value that is not an object. Top-level keys not in `kept` are left out of
// the result. Duplicate keys: the last value wins, at the first one's place
// (as Python's json and nlohmann do).
nlohmann::ordered_json parse_request_object(std::string_view body, FieldNames kept);

// "integer", "number", "string", "object", ...: a value's JSON type as refusals name it.
std::string json_type_name(const nlohmann::ordered_json& v);

}  // namespace fp4serve::server
