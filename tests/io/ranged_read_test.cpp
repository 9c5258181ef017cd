// RangedReader: byte runs of tensors read with pread equal the mapped bytes, whether the
// runs are read one by one (large gaps) or through their gaps (small ones); runs that
// leave a tensor are refused naming it. Also the sparse writer's holes.
#include <sys/stat.h>

#include <cstring>

#include "io/ranged_read.h"
#include "io/safetensors.h"
#include "io_test_support.h"

namespace fp4serve {
namespace {

using ::testing::HasSubstr;
using testing::ScratchDir;

TensorView counting_tensor(int64_t rows, int64_t cols, uint8_t seed) {
  TensorView t = make_owned_tensor(DType::U8, {rows, cols}, "t");
  for (size_t i = 0; i < t.nbytes; ++i) mutable_data(t)[i] = std::byte(uint8_t(i * 31 + seed));
  return t;
}

TEST(RangedRead, RunsEqualTheMappedBytes) {
  ScratchDir dir;
  // A narrow tensor (gaps merged) and a wide one (gaps above kMergeGap: one read per run).
  const int64_t wide = int64_t(RangedReader::kMergeGap) + 4096;
  write_safetensors(dir.file("a.safetensors"), {{"narrow", counting_tensor(300, 1536, 1)}});
  write_safetensors(dir.file("b.safetensors"), {{"wide", counting_tensor(5, wide, 2)}});
  const TensorSource source = TensorSource::open(dir.path().string());
  RangedReader reader(source);

  struct Case {
    const char* tensor;
    ByteRuns runs;
    bool gaps_read;
  };
  const TensorView& narrow = source.tensor("narrow");
  const TensorView& widet = source.tensor("wide");
  const std::vector<Case> cases = {
      {"narrow", {&narrow, 0, narrow.nbytes, 1, 0}, false},
      {"narrow", {&narrow, 1536 * 7 + 96, 96, 200, 1536}, true},
      {"wide", {&widet, 100, 1000, 5, uint64_t(wide)}, false},
  };
  for (const Case& c : cases) {
    const uint64_t asked_before = reader.bytes_asked(), read_before = reader.bytes_read();
    std::vector<std::byte> out(c.runs.bytes());
    reader.read(c.runs, out.data());
    for (uint64_t i = 0; i < c.runs.count; ++i)
      ASSERT_EQ(std::memcmp(out.data() + i * c.runs.length, c.runs.tensor->data + c.runs.offset + i * c.runs.stride,
                            c.runs.length),
                0)
          << c.tensor << " run " << i;
    EXPECT_EQ(reader.bytes_asked() - asked_before, c.runs.bytes());
    const uint64_t read = reader.bytes_read() - read_before;
    if (c.gaps_read) {
      EXPECT_EQ(read, (c.runs.count - 1) * c.runs.stride + c.runs.length);
    } else {
      EXPECT_EQ(read, c.runs.bytes());
    }
  }
}

TEST(RangedRead, RunsOutsideTheTensorAreRefused) {
  ScratchDir dir;
  write_safetensors(dir.file("a.safetensors"), {{"w", counting_tensor(4, 8, 3)}});
  const TensorSource source = TensorSource::open(dir.path().string());
  RangedReader reader(source);
  std::vector<std::byte> out(64);
  const TensorView& w = source.tensor("w");
  try {
    reader.read(ByteRuns{&w, 8, 8, 4, 8}, out.data());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("w"));
    EXPECT_THAT(e.what(), HasSubstr("leave the tensor's 32 bytes"));
  }
  const TensorView foreign = counting_tensor(2, 2, 0);
  EXPECT_THROW(reader.read(ByteRuns{&foreign, 0, 4, 1, 0}, out.data()), Error);
}

TEST(SparseWrite, MissingDataBecomesAHoleOnlyWhenAsked) {
  ScratchDir dir;
  TensorView hole;
  hole.dtype = DType::F32;
  hole.shape = {1 << 20};
  hole.nbytes = size_t{4} << 20;
  const std::string path = dir.file("s.safetensors");
  EXPECT_THROW(write_safetensors(path, {{"h", hole}}), Error);
  write_safetensors(path, {{"h", hole}, {"small", counting_tensor(2, 3, 4)}}, {}, MissingData::kHole);
  const auto file = SafetensorsFile::open(path);
  const TensorView& h = file->tensor("h");
  EXPECT_EQ(h.nbytes, size_t{4} << 20);
  for (size_t i = 0; i < h.nbytes; i += 4096) ASSERT_EQ(h.data[i], std::byte{0});
  EXPECT_EQ(std::memcmp(file->tensor("small").data, counting_tensor(2, 3, 4).data, 6), 0);
  struct stat st{};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_LT(uint64_t(st.st_blocks) * 512, uint64_t{1} << 20);  // the 4 MiB hole takes no disk
}

}  // namespace
}  // namespace fp4serve
