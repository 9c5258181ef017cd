// Runs the Node end-to-end suites (official OpenAI SDK against a live
// `fp4serve serve`, on the fake model and on models/default) as ctest tests. Missing node or npm packages fail the
// test: CI must install them (scripts/test runs `npm ci --prefix tests/e2e`).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <sys/wait.h>

namespace {

const std::string kSuiteDir = FP4SERVE_SOURCE_DIR "/tests/e2e";

void run_suite(const std::string& file) {
  ASSERT_TRUE(std::filesystem::exists(kSuiteDir + "/node_modules/openai/package.json"))
      << "the OpenAI SDK is not installed: run `npm ci --prefix tests/e2e` (scripts/test does)";
  const char* bin = std::getenv("FP4SERVE_BIN");
  std::string binary = bin ? bin : FP4SERVE_BINARY_DIR "/bin/fp4serve";
  ASSERT_TRUE(std::filesystem::exists(binary)) << binary << " is not built";
#ifdef __SANITIZE_ADDRESS__
  // The server is an AddressSanitizer build too: its RSS includes shadow memory ASan never returns.
  const std::string sanitized = " FP4SERVE_ASAN=1";
#else
  const std::string sanitized;
#endif
  std::string command = "cd '" + kSuiteDir + "' &&" + sanitized + " FP4SERVE_BIN='" + binary +
                        "' node --test --test-reporter=spec '" + file + "' 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr) << "cannot run: " << command;
  std::string output;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  int status = pclose(pipe);
  std::printf("%s", output.c_str());
  ASSERT_TRUE(WIFEXITED(status)) << "node did not exit normally";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "failures in " << file << " (node exit code 127 means node is missing)";
}

TEST(EndToEnd, ApiSurface) { run_suite("api.test.mjs"); }
TEST(EndToEnd, ErrorCases) { run_suite("errors.test.mjs"); }
TEST(EndToEnd, LoadAbortQueueTimeoutDrain) { run_suite("load.test.mjs"); }
TEST(EndToEnd, DeepSeekTextThinkingAndTools) { run_suite("deepseek.test.mjs"); }
TEST(EndToEnd, DefaultModel) { run_suite("real_model.test.mjs"); }

}  // namespace
