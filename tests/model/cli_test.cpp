// The CLI contract of `fp4serve logits` and `fp4serve generate` (issue 4, item 4),
// checked by running the binary on the committed fixtures and comparing with the
// model driven in-process.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "backend/cuda_probe.h"
#include "checkpoint/checkpoint.h"
#include "cpu_model.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "text/byte_level.h"
#include "text/tokenizer.h"

namespace fp4serve {
namespace {

const std::string kModel = std::string(FP4SERVE_SOURCE_DIR) + "/tests/fixtures/parity/flash/native";

struct Result {
  int status = 0;
  std::string output;
};

// Runs the CLI; output is stdout, plus stderr when `with_stderr`.
Result run_cli(const std::string& args, bool with_stderr = true) {
  const char* bin = std::getenv("FP4SERVE_BIN");
  const std::string cmd =
      std::string(bin ? bin : FP4SERVE_BINARY_DIR "/bin/fp4serve") + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  while (p && fgets(buf, sizeof buf, p)) r.output += buf;
  r.status = p ? pclose(p) : -1;
  return r;
}

std::string temp_file(const char* name) { return ::testing::TempDir() + name; }

std::vector<float> in_process(const std::vector<int32_t>& tokens, ActQuantMode mode) {
  LoadOptions lo;
  lo.show_progress = false;
  const Checkpoint ckpt = load_checkpoint(kModel, lo);
  testing::CpuModel m(ckpt, ModelOptions{mode, 64});
  m.model.create_sequence(0);
  std::vector<float> logits;
  const StepItem in{0, 0, tokens, LogitsMode::kAll};
  m.model.forward(std::span<const StepItem>(&in, 1), logits);
  return logits;
}

std::vector<float> read_logits(const std::string& path, int64_t S) {
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->tensor_names(), std::vector<std::string>{"logits"});
  const TensorView& t = f->tensor("logits");
  EXPECT_EQ(t.dtype, DType::F32);
  EXPECT_EQ(t.shape, (std::vector<int64_t>{S, 256}));
  return std::vector<float>(t.as<float>(), t.as<float>() + t.numel());
}

TEST(Cli, LogitsPrefillDecodeAndActQuantOff) {
  const std::vector<int32_t> tokens{3, 14, 15, 92, 65, 35, 89, 79, 32, 38, 46, 26};
  const std::string list = "3,14,15,92,65,35,89,79,32,38,46,26";
  const std::string out = temp_file("logits.safetensors");
  ASSERT_EQ(run_cli("logits " + kModel + " --tokens " + list + " --out " + out).status, 0);
  const auto prefill = read_logits(out, 12);
  EXPECT_EQ(prefill, in_process(tokens, ActQuantMode::kAuto));
  ASSERT_EQ(run_cli("logits " + kModel + " --tokens " + list + " --out " + out + " --decode").status, 0);
  EXPECT_EQ(read_logits(out, 12), prefill);
  ASSERT_EQ(run_cli("logits " + kModel + " --tokens " + list + " --out " + out + " --act-quant off").status, 0);
  const auto off = read_logits(out, 12);
  EXPECT_EQ(off, in_process(tokens, ActQuantMode::kOff));
  EXPECT_NE(off, prefill);
}

// --act-quant and --device mean the same on every command that runs the model.
TEST(Cli, DeviceAndActQuantFlags) {
  const std::string list = "3,14,15,92,65,35";
  const std::vector<int32_t> tokens{3, 14, 15, 92, 65, 35};
  const std::string out = temp_file("logits_flags.safetensors");
  const Result cpu = run_cli("logits " + kModel + " --tokens " + list + " --out " + out + " --device cpu --act-quant fp8");
  ASSERT_EQ(cpu.status, 0) << cpu.output;
  EXPECT_NE(cpu.output.find("device: cpu"), std::string::npos) << "the choice is printed at start: " << cpu.output;
  EXPECT_EQ(read_logits(out, 6), in_process(tokens, ActQuantMode::kFp8));
  const Result bad_quant = run_cli("logits " + kModel + " --tokens 1 --out " + out + " --act-quant fp4");
  EXPECT_NE(bad_quant.status, 0);
  EXPECT_NE(bad_quant.output.find("--act-quant fp4"), std::string::npos) << bad_quant.output;
  const Result bad_device = run_cli("generate " + kModel + " --tokens 1 --max-tokens 1 --device tpu");
  EXPECT_NE(bad_device.status, 0);
  EXPECT_NE(bad_device.output.find("--device tpu"), std::string::npos) << bad_device.output;
  const Result share = run_cli("logits " + kModel + " --tokens 1 --out " + out + " --gpu-memory-utilization 1.5");
  EXPECT_NE(share.status, 0);
  EXPECT_NE(share.output.find("--gpu-memory-utilization"), std::string::npos) << share.output;
  if (cuda_device_count() == 0) {
    // Without a GPU (or without CUDA in the build) --device cuda is a clear error, and auto runs on the CPU.
    const Result cuda = run_cli("logits " + kModel + " --tokens 1 --out " + out + " --device cuda");
    EXPECT_NE(cuda.status, 0);
    EXPECT_NE(cuda.output.find("--device cuda"), std::string::npos) << cuda.output;
    const Result automatic = run_cli("logits " + kModel + " --tokens 1 --out " + out);
    ASSERT_EQ(automatic.status, 0) << automatic.output;
    EXPECT_NE(automatic.output.find("device: cpu"), std::string::npos) << automatic.output;
  }
}

TEST(Cli, GenerateGreedyFollowsTheArgmaxChain) {
  const Result r = run_cli("generate " + kModel + " --tokens 5,6,7 --max-tokens 6", false);
  ASSERT_EQ(r.status, 0) << r.output;
  std::vector<int32_t> tokens{5, 6, 7};
  std::string expect;
  for (int i = 0; i < 6; ++i) {
    const auto logits = in_process(tokens, ActQuantMode::kAuto);
    const int32_t next = static_cast<int32_t>(std::max_element(logits.end() - 256, logits.end()) - (logits.end() - 256));
    expect += (i ? "," : "") + std::to_string(next);
    tokens.push_back(next);
    if (next == 1) break;
  }
  EXPECT_EQ(r.output.substr(0, r.output.find('\n')), expect) << r.output;
}

TEST(Cli, GenerateSamplingIsSeededAndErrorsAreClear) {
  const std::string args = "generate " + kModel + " --tokens 9,8,7 --max-tokens 5 --temperature 0.9 --top-p 0.8 --seed 42";
  const Result a = run_cli(args, false), b = run_cli(args, false);
  ASSERT_EQ(a.status, 0) << a.output;
  EXPECT_EQ(a.output.substr(0, a.output.find('\n')), b.output.substr(0, b.output.find('\n')));
  const Result prompt = run_cli("generate " + kModel + " --prompt hello --max-tokens 2");
  EXPECT_NE(prompt.status, 0);
  EXPECT_NE(prompt.output.find("tokenizer.json"), std::string::npos) << prompt.output;
  const Result bad = run_cli("logits " + kModel + " --tokens 1,x --out " + temp_file("bad.safetensors"));
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("'x'"), std::string::npos) << bad.output;
  const Result oov = run_cli("logits " + kModel + " --tokens 1,999 --out " + temp_file("bad.safetensors"));
  EXPECT_NE(oov.status, 0);
  EXPECT_NE(oov.output.find("999"), std::string::npos) << oov.output;
}

// --prompt: the model directory plus a byte-level tokenizer.json whose ids are the 256
// bytes (the fixture's vocabulary), so the text path must equal the id path.
TEST(Cli, GeneratePromptGoesThroughTheTokenizer) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / "model_with_tokenizer";
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors"}) fs::create_symlink(fs::path(kModel) / f, dir / f);
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[text::bytes_to_byte_level(std::string(1, static_cast<char>(b)))] = b;
  const nlohmann::json tok = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}},
                              {"added_tokens", nlohmann::json::array()},
                              {"normalizer", nullptr},
                              {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
                              {"decoder", {{"type", "ByteLevel"}}}};
  std::ofstream((dir / "tokenizer.json").string()) << tok.dump();

  const Result text = run_cli("generate " + dir.string() + " --prompt hi --max-tokens 5", false);
  ASSERT_EQ(text.status, 0) << text.output;
  const Result ids = run_cli("generate " + kModel + " --tokens 0,104,105 --max-tokens 5", false);  // BOS, 'h', 'i'
  ASSERT_EQ(ids.status, 0) << ids.output;
  std::vector<uint32_t> generated;
  std::stringstream list(ids.output.substr(0, ids.output.find('\n')));
  for (std::string item; std::getline(list, item, ',');) generated.push_back(static_cast<uint32_t>(std::stoul(item)));
  const auto tokenizer = text::Tokenizer::from_file((dir / "tokenizer.json").string());
  EXPECT_EQ(text.output, tokenizer.decode(generated, true) + "\n");
}

}  // namespace
}  // namespace fp4serve
