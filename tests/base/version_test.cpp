#include "base/version.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <memory>
#include <string>

#include "fp4serve_version.h"

namespace {

std::string run(const std::string& command) {
  std::array<char, 256> buffer{};
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  while (pipe && fgets(buffer.data(), buffer.size(), pipe.get())) out += buffer.data();
  return out;
}

TEST(Version, NamesVersionCommitAndCudaTarget) {
  const std::string v = fp4serve::version_string();
  EXPECT_NE(v.find(FP4SERVE_VERSION), std::string::npos);
  EXPECT_NE(v.find(FP4SERVE_GIT_COMMIT), std::string::npos);
  EXPECT_NE(v.find("\ncuda: "), std::string::npos);
}

TEST(Version, CliPrintsTheSameString) {
  const std::string out = run(std::string(FP4SERVE_BINARY_DIR) + "/bin/fp4serve --version");
  EXPECT_EQ(out, fp4serve::version_string() + "\n");
}

}  // namespace
