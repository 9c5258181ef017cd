// Token-id files (raw uint16 little-endian) and the perplexity protocol's windows.
#include "io/token_ids_file.h"

#include "io_test_support.h"

namespace fp4serve {
namespace {

using testing::bytes_of;
using testing::expect_error;
using testing::ScratchDir;
using testing::write_file;

TEST(TokenIdsFile, LittleEndianUint16Ids) {
  ScratchDir dir;
  // 0, 1, 258 (0x0102), 65535: bytes as numpy's '<u2' tofile() writes them.
  const std::string path = write_file(dir.file("t.u16"), bytes_of({0x00, 0x00, 0x01, 0x00, 0x02, 0x01, 0xFF, 0xFF}));
  EXPECT_EQ(read_u16_token_ids(path), (std::vector<int32_t>{0, 1, 258, 65535}));
}

TEST(TokenIdsFile, ErrorsNameTheFile) {
  ScratchDir dir;
  expect_error([&] { read_u16_token_ids(dir.file("missing.u16")); }, {dir.file("missing.u16"), "cannot open"});
  const std::string empty = write_file(dir.file("empty.u16"), "");
  expect_error([&] { read_u16_token_ids(empty); }, {empty, "empty"});
  const std::string odd = write_file(dir.file("odd.u16"), bytes_of({1, 0, 2}));
  expect_error([&] { read_u16_token_ids(odd); }, {odd, "3 bytes", "uint16"});
}

TEST(TokenIdsFile, WindowsAreConsecutiveWithAShorterLast) {
  const std::vector<int32_t> ids = {10, 11, 12, 13, 14, 15, 16};
  const auto w = token_windows(ids, 3);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(std::vector<int32_t>(w[0].begin(), w[0].end()), (std::vector<int32_t>{10, 11, 12}));
  EXPECT_EQ(std::vector<int32_t>(w[1].begin(), w[1].end()), (std::vector<int32_t>{13, 14, 15}));
  EXPECT_EQ(std::vector<int32_t>(w[2].begin(), w[2].end()), (std::vector<int32_t>{16}));
  EXPECT_EQ(token_windows(ids, 7).size(), 1u);
  EXPECT_EQ(token_windows(ids, 100).front().size(), 7u);
  // The held-out protocol: 28,855 tokens in windows of 512 -> 57 windows, the last of 183.
  const std::vector<int32_t> heldout(28855, 0);
  const auto h = token_windows(heldout, 512);
  EXPECT_EQ(h.size(), 57u);
  EXPECT_EQ(h.back().size(), 183u);
  expect_error([&] { token_windows(ids, 0); }, {"window of 0 tokens"});
}

}  // namespace
}  // namespace fp4serve
