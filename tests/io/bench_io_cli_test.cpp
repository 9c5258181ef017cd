// `fp4serve bench io` end to end on a small file: --make writes a readable
// NVFP4-shaped checkpoint, and the benchmark's checksum equals the byte sum of
// the data section computed here from the raw file. Speed is not checked.
#include <cstdio>

#include "io/safetensors.h"
#include "io_test_support.h"

namespace fp4serve {
namespace {

using testing::read_file;
using testing::ScratchDir;

std::string run(const std::string& arguments, int* exit_code) {
  const std::string command = std::string(FP4SERVE_BINARY_DIR) + "/bin/fp4serve " + arguments + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  std::string output;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  *exit_code = ::pclose(pipe);
  return output;
}

TEST(BenchIoCli, MakesAFileAndReportsBothMethods) {
  ScratchDir dir;
  const std::string path = dir.file("bench.safetensors");
  int exit_code = -1;
  const std::string made = run("bench io --make " + path + " --gb 0.002", &exit_code);
  ASSERT_EQ(exit_code, 0) << made;

  auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->tensor("model.layers.0.mlp.down_proj.weight").dtype, DType::U8);
  EXPECT_EQ(file->tensor("model.layers.0.mlp.down_proj.weight_scale").dtype, DType::F8_E4M3);
  EXPECT_EQ(file->tensor("model.layers.0.mlp.down_proj.weight_scale_2").shape, std::vector<int64_t>{});
  EXPECT_NEAR(static_cast<double>(file->file_size()), 2e6, 2e4);

  const std::string bytes = read_file(path);
  uint64_t sum = 0;
  for (size_t i = 8 + testing::header_length_of(bytes); i < bytes.size(); ++i) sum += static_cast<uint8_t>(bytes[i]);

  const std::string report = run("bench io " + path + " --threads 2", &exit_code);
  ASSERT_EQ(exit_code, 0) << report;
  EXPECT_THAT(report, ::testing::HasSubstr("cold  fp4serve reader (mmap, 2 thr)"));
  EXPECT_THAT(report, ::testing::HasSubstr("cold  cat FILE >/dev/null"));
  EXPECT_THAT(report, ::testing::HasSubstr("warm  fp4serve reader (mmap, 2 thr)"));
  EXPECT_THAT(report, ::testing::HasSubstr("warm  cat FILE >/dev/null"));
  EXPECT_THAT(report, ::testing::HasSubstr("checksum (sum of all tensor bytes): " + std::to_string(sum)));
}

TEST(BenchIoCli, BadFileIsAnErrorNamingIt) {
  ScratchDir dir;
  const std::string path = testing::write_file(dir.file("bad.safetensors"), "short");
  int exit_code = 0;
  const std::string output = run("bench io " + path, &exit_code);
  EXPECT_NE(exit_code, 0);
  EXPECT_THAT(output, ::testing::HasSubstr("error: " + path + ": file is 5 bytes, too short"));
}

}  // namespace
}  // namespace fp4serve
