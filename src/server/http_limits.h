// What one HTTP connection may cost the server: bytes it may make us hold and
// how long each phase of a request may take. Every limit is a `serve` flag
// (docs/SERVER.md, "Limits").
#pragma once

#include <chrono>
#include <cstddef>

namespace fp4serve::server {

// Boost.Beast keeps a header field's length in 16 bits: the whole header
// section (request line included) must stay below this for no field to overflow.
constexpr size_t kMaxHeaderSectionBytes = 65533;

struct HttpLimits {
  size_t max_body_bytes = size_t{64} << 20;   // over it: 413, chunked or not
  size_t max_header_bytes = size_t{32} << 10; // header fields; over it: 431
  size_t max_url_bytes = size_t{8} << 10;     // request target; over it: 414
  // Whole-phase deadlines, not per-byte timeouts: a client sending one byte a
  // second cannot keep a connection past them.
  std::chrono::milliseconds header_timeout{std::chrono::seconds(10)};  // from the first wait to the blank line
  std::chrono::milliseconds body_timeout{std::chrono::seconds(60)};    // from the headers to the last body byte
  std::chrono::milliseconds write_timeout{std::chrono::seconds(30)};   // for each write to drain
  int max_connections = 1024;  // past it: idle ones are closed, else 503 and close
  // Unsent stream bytes a connection may hold before generation output waits
  // for the client to read (a stalled reader must not grow our memory).
  size_t max_unsent_stream_bytes = size_t{1} << 20;
};

}  // namespace fp4serve::server
