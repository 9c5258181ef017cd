// One error style for the whole code base: throw fp4serve::Error with a message
// that names the file, tensor or field it is about. Callers at the edge (CLI,
// server) catch it and report; nothing below them prints.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace fp4serve {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// Checks a condition that bad input can violate (not a programming invariant).
#define FP4SERVE_CHECK(cond, ...)      \
  do {                                 \
    if (!(cond)) ::fp4serve::fail(__VA_ARGS__); \
  } while (0)

}  // namespace fp4serve
