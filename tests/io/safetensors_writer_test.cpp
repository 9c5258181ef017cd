// The writer: exact bytes for a small file (spelled out here), round trips of
// every dtype through the reader, layout rules, and refusals.
#include <signal.h>
#include <sys/resource.h>

#include <random>

#include "io/safetensors.h"
#include "io_test_support.h"

namespace fp4serve {
namespace {

using testing::bytes_of;
using testing::expect_error;
using testing::read_file;
using testing::ScratchDir;
using testing::write_file;

TensorView tensor_with_bytes(DType dtype, std::vector<int64_t> shape, const std::string& bytes) {
  TensorView t = make_owned_tensor(dtype, std::move(shape));
  EXPECT_EQ(t.nbytes, bytes.size());
  if (!bytes.empty()) std::memcpy(mutable_data(t), bytes.data(), bytes.size());
  return t;
}

std::string bytes_of_view(const TensorView& t) { return std::string(reinterpret_cast<const char*>(t.data), t.nbytes); }

// Byte offset of a tensor within the data section (the header is what precedes it).
size_t data_offset(const SafetensorsFile& file, const std::string& name) {
  const uint64_t header = testing::header_length_of(read_file(file.path()));
  return static_cast<size_t>(file.tensor(name).data - file.mapped_data()) - 8 - header;
}

TEST(SafetensorsWriter, ExactBytesOfASmallFile) {
  ScratchDir dir;
  const std::string path = dir.file("small.safetensors");
  write_safetensors(path,
                    {{"b", tensor_with_bytes(DType::U8, {3}, bytes_of({1, 2, 3}))},
                     {"a", tensor_with_bytes(DType::F32, {1}, bytes_of({0, 0, 0x80, 0x3F}))}},
                    {{"k", "v"}});
  // Sorted keys, the F32 tensor first (larger elements), 131 header bytes padded
  // with 5 spaces to 136 = 0x88 so that the data starts at 144, a multiple of 8.
  const std::string expected = bytes_of({0x88, 0, 0, 0, 0, 0, 0, 0}) +
                               R"({"__metadata__":{"k":"v"},"a":{"data_offsets":[0,4],"dtype":"F32","shape":[1]},)"
                               R"("b":{"data_offsets":[4,7],"dtype":"U8","shape":[3]}})" +
                               "     " + bytes_of({0, 0, 0x80, 0x3F, 1, 2, 3});
  EXPECT_EQ(read_file(path), expected);
}

TEST(SafetensorsWriter, RoundTripOfEveryDtype) {
  const std::vector<DType> dtypes = {DType::F64,     DType::F32,     DType::F16,    DType::BF16, DType::I64,
                                     DType::I32,     DType::I16,     DType::I8,     DType::U8,   DType::BOOL,
                                     DType::F8_E4M3, DType::F8_E5M2, DType::F8_E8M0};
  std::mt19937 random(2024);
  std::vector<NamedTensor> tensors;
  for (DType dtype : dtypes) {
    std::string bytes(3 * 5 * dtype_size(dtype), '\0');
    for (char& c : bytes) c = static_cast<char>(random() & 0xFF);
    tensors.push_back({"t." + std::string(dtype_name(dtype)), tensor_with_bytes(dtype, {3, 5}, bytes)});
  }
  tensors.push_back({"scalar", tensor_with_bytes(DType::F32, {}, bytes_of({0, 0, 0xC0, 0x3F}))});
  tensors.push_back({"empty", tensor_with_bytes(DType::BF16, {4, 0}, "")});
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"producer", "fp4serve test"}};

  ScratchDir dir;
  const std::string path = dir.file("all.safetensors");
  write_safetensors(path, tensors, metadata);
  auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->metadata(), metadata);
  EXPECT_EQ(file->tensor_names().size(), tensors.size());
  for (const auto& [name, original] : tensors) {
    SCOPED_TRACE(name);
    const TensorView& read = file->tensor(name);
    EXPECT_EQ(read.dtype, original.dtype);
    EXPECT_EQ(read.shape, original.shape);
    EXPECT_EQ(bytes_of_view(read), bytes_of_view(original));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(read.data) % dtype_size(read.dtype), 0u) << "misaligned";
  }
  EXPECT_EQ((8 + testing::header_length_of(read_file(path))) % 8, 0u);
}

TEST(SafetensorsWriter, GivenOrderWithinEachElementSize) {
  ScratchDir dir;
  const std::string path = dir.file("order.safetensors");
  write_safetensors(path, {{"x", tensor_with_bytes(DType::U8, {1}, "x")},
                           {"y", tensor_with_bytes(DType::F32, {1}, "yyyy")},
                           {"z", tensor_with_bytes(DType::U8, {2}, "zz")},
                           {"w", tensor_with_bytes(DType::I32, {1}, "wwww")}});
  auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->tensor_names(), (std::vector<std::string>{"y", "w", "x", "z"}));
  EXPECT_EQ(data_offset(*file, "y"), 0u);
  EXPECT_EQ(data_offset(*file, "w"), 4u);
  EXPECT_EQ(data_offset(*file, "x"), 8u);
  EXPECT_EQ(data_offset(*file, "z"), 9u);
}

TEST(SafetensorsWriter, ReplacesAnExistingFile) {
  ScratchDir dir;
  const std::string path = write_file(dir.file("r.safetensors"), "old contents");
  write_safetensors(path, {{"a", tensor_with_bytes(DType::U8, {2}, "ab")}});
  EXPECT_EQ(bytes_of_view(SafetensorsFile::open(path)->tensor("a")), "ab");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(SafetensorsWriter, RefusesBadTensorsAndWritesNothing) {
  ScratchDir dir;
  const std::string path = dir.file("bad.safetensors");
  const TensorView two = tensor_with_bytes(DType::U8, {2}, "ab");
  expect_error([&] { write_safetensors(path, {{"a", two}, {"a", two}}); }, {path, "tensor 'a' given twice"});
  expect_error([&] { write_safetensors(path, {{"__metadata__", two}}); }, {path, "'__metadata__' is reserved"});
  TensorView wrong = two;
  wrong.shape = {3};
  expect_error(
      [&] {
        write_safetensors(path, {{"w", wrong}});
      },
      {path, "tensor 'w'", "dtype U8 x shape [3] needs 3 bytes, but the view holds 2"});
  TensorView negative = two;
  negative.shape = {-2};
  expect_error([&] { write_safetensors(path, {{"n", negative}}); }, {path, "tensor 'n'", "negative dimension"});
  TensorView no_data = two;
  no_data.data = nullptr;
  expect_error([&] { write_safetensors(path, {{"d", no_data}}); }, {path, "tensor 'd'", "no data"});
  expect_error([&] { write_safetensors(path, {{std::string("bad\xff", 4), two}}); }, {path, "UTF-8"});
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(SafetensorsWriter, MissingDirectory) {
  ScratchDir dir;
  const std::string path = dir.file("no/such/dir/x.safetensors");
  expect_error([&] { write_safetensors(path, {}); }, {path, "cannot create a temporary file"});
}

// A write that fails halfway (here: the file size limit, as a full disk would)
// leaves the previous file untouched and no temporary file behind.
TEST(SafetensorsWriter, FailedWriteLeavesNoPartialFile) {
  ScratchDir dir;
  const std::string path = write_file(dir.file("keep.safetensors"), "previous version");
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  rlimit limited = saved;
  limited.rlim_cur = 64 * 1024;
  auto previous_handler = ::signal(SIGXFSZ, SIG_IGN);  // get EFBIG instead of being killed
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limited), 0);
  const TensorView big = make_owned_tensor(DType::U8, {1 << 20});
  try {
    write_safetensors(path, {{"big", big}});
    ADD_FAILURE() << "a write past RLIMIT_FSIZE succeeded";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr(path));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("write failed"));
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, previous_handler);
  EXPECT_EQ(read_file(path), "previous version");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

}  // namespace
}  // namespace fp4serve
