// Request validation on arbitrary bytes: every input is either accepted or
// refused with an ApiError; anything else (a crash, another exception) is a
// bug. Accepted chat requests are also rendered and tokenized by the stand-in
// text layer, which must not fail on anything the validator let through.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "server/api_error.h"
#include "server/byte_level_text.h"
#include "server/openai_request.h"

using namespace fp4serve::server;

template <typename Parse>
void expect_parsed_or_refused(Parse parse) {
  try {
    parse();
  } catch (const ApiError& e) {
    if (e.status() < 400 || e.status() > 599) std::abort();
    (void)e.to_json().dump();
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  static const ByteLevelText text;
  expect_parsed_or_refused([&] {
    ChatRequest r = parse_chat_request(body);
    (void)text.encode(text.render_chat(r), false);
  });
  expect_parsed_or_refused([&] { parse_completion_request(body); });
  expect_parsed_or_refused([&] { parse_tokenize_request(body); });
  expect_parsed_or_refused([&] { parse_detokenize_request(body); });
  return 0;
}
