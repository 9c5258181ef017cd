#include "io/token_ids_file.h"

#include <fstream>
#include <iterator>

#include "base/error.h"

namespace fp4serve {

std::vector<int32_t> read_u16_token_ids(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open the token-id file", path);
  const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) fail("{}: read error", path);
  if (bytes.empty()) fail("{}: the token-id file is empty", path);
  if (bytes.size() % 2 != 0)
    fail("{}: {} bytes, not a whole number of uint16 token ids (expected raw little-endian uint16)", path, bytes.size());
  std::vector<int32_t> ids(bytes.size() / 2);
  for (size_t i = 0; i < ids.size(); ++i)
    ids[i] = static_cast<int32_t>(static_cast<uint8_t>(bytes[2 * i]) | (static_cast<uint8_t>(bytes[2 * i + 1]) << 8));
  return ids;
}

std::vector<std::span<const int32_t>> token_windows(std::span<const int32_t> tokens, int64_t window) {
  FP4SERVE_CHECK(window > 0, "window of {} tokens: expected a positive length", window);
  std::vector<std::span<const int32_t>> out;
  for (size_t at = 0; at < tokens.size(); at += static_cast<size_t>(window))
    out.push_back(tokens.subspan(at, std::min(static_cast<size_t>(window), tokens.size() - at)));
  return out;
}

}  // namespace fp4serve
