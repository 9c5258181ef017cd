// MappedFile: contents, empty files, and errors naming the path.
#include "base/mapped_file.h"

#include "io_test_support.h"

namespace fp4serve {
namespace {

using testing::expect_error;
using testing::ScratchDir;
using testing::write_file;

TEST(MappedFile, MapsTheWholeFile) {
  ScratchDir dir;
  const std::string path = write_file(dir.file("f"), "hello, mapping");
  auto mapped = MappedFile::open(path);
  EXPECT_EQ(mapped->path(), path);
  ASSERT_EQ(mapped->size(), 14u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(mapped->data()), mapped->size()), "hello, mapping");
  // Hints only change speed; out-of-range ones are clipped, not errors.
  mapped->advise(MappedFile::Access::Sequential, 0, 14);
  mapped->advise(MappedFile::Access::WillNeed, 3, 1000);
  mapped->advise(MappedFile::Access::WillNeed, 1000, 1);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(mapped->data()), 5), "hello");
}

TEST(MappedFile, EmptyFile) {
  ScratchDir dir;
  auto mapped = MappedFile::open(write_file(dir.file("empty"), ""));
  EXPECT_EQ(mapped->size(), 0u);
  EXPECT_EQ(mapped->data(), nullptr);
}

TEST(MappedFile, Errors) {
  ScratchDir dir;
  expect_error([&] { MappedFile::open(dir.file("missing")); }, {dir.file("missing"), "cannot open"});
  expect_error([&] { MappedFile::open(dir.path().string()); }, {dir.path().string(), "not a regular file"});
}

}  // namespace
}  // namespace fp4serve
