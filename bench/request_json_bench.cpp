// Parse time of request bodies: `request_json_bench FILE [REPEATS]` parses
// FILE as a /v1/chat/completions body REPEATS times and prints the mean, and
// whether it was accepted (else the 400's message). Peak memory is measured
// from outside (`/usr/bin/time -v`); docs/SERVER.md has the figures.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "server/api_error.h"
#include "server/openai_request.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: request_json_bench FILE [REPEATS]\n");
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string body = buffer.str();
  const int repeats = argc > 2 ? std::stoi(argv[2]) : 1;
  std::string outcome = "accepted";
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < repeats; ++i) {
    try {
      fp4serve::server::parse_chat_request(body);
    } catch (const fp4serve::server::ApiError& e) {
      outcome = std::string("400: ") + std::string(e.what()).substr(0, 160);
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / repeats;
  std::printf("%s: %zu bytes, %.3f ms per parse (%s)\n", argv[1], body.size(), seconds * 1e3, outcome.c_str());
  return 0;
}
