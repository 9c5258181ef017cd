#include "runtime/token_list.h"

#include <charconv>
#include <string>

#include "base/error.h"

namespace fp4serve {

std::vector<int32_t> parse_token_list(std::string_view text) {
  std::vector<int32_t> out;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    std::string_view item = text.substr(at, comma - at);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    int32_t v = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    FP4SERVE_CHECK(!item.empty() && ec == std::errc() && end == item.data() + item.size() && v >= 0,
                   "--tokens: '{}' is not a token id (expected comma-separated non-negative integers)", std::string(item));
    out.push_back(v);
    at = comma + 1;
  }
  FP4SERVE_CHECK(!out.empty(), "--tokens: no token ids given");
  return out;
}

}  // namespace fp4serve
