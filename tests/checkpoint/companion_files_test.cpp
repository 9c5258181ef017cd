// quantize copies what a user needs beside the weights (tokenizer, generation config,
// chat template, licence) and nothing that describes the old weights.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "checkpoint/companion_files.h"
#include "checkpoint_test_support.h"

namespace fp4serve {
namespace {

using testing::ScratchDir;

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(CompanionFiles, CopiesTokenizerConfigsAndTemplatesNotWeightsOrConfigs) {
  ScratchDir src("src"), dst("dst"), blobs("blobs");
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "generation_config.json", "chat_template.jinja",
                           "special_tokens_map.json", "LICENSE", "config.json", "hf_quant_config.json",
                           "model.safetensors", "model-00001-of-00002.safetensors", "model.safetensors.index.json",
                           "pytorch_model.bin", "pytorch_model.bin.index.json", "consolidated.pth"})
    std::ofstream(src / name) << "contents of " << name;
  std::filesystem::create_directories(src / "inference");
  // A Hugging Face cache snapshot links its files to blobs: the file is copied, not the link.
  std::ofstream(blobs / "abc") << "merges";
  std::filesystem::create_symlink(blobs / "abc", src / "merges.txt");
  std::ofstream(dst / "config.json") << "ours";

  const CompanionCopy copy = copy_companion_files(src.str(), dst.str());
  EXPECT_EQ(copy.copied, (std::vector<std::string>{"LICENSE", "chat_template.jinja", "generation_config.json", "merges.txt",
                                                   "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"}));
  EXPECT_EQ(copy.skipped, (std::vector<std::string>{"inference/ (a directory)"}));
  EXPECT_EQ(read(dst / "tokenizer.json"), "contents of tokenizer.json");
  EXPECT_EQ(read(dst / "config.json"), "ours");
  EXPECT_FALSE(std::filesystem::is_symlink(dst / "merges.txt"));
  EXPECT_EQ(read(dst / "merges.txt"), "merges");
  EXPECT_FALSE(std::filesystem::exists(dst / "model.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(dst / "hf_quant_config.json"));
}

TEST(CompanionFiles, AnExistingFileIsNeverOverwritten) {
  ScratchDir src("src"), dst("dst");
  std::ofstream(src / "tokenizer.json") << "source";
  std::ofstream(dst / "tokenizer.json") << "already here";
  const CompanionCopy copy = copy_companion_files(src.str(), dst.str());
  EXPECT_TRUE(copy.copied.empty());
  EXPECT_EQ(copy.skipped, (std::vector<std::string>{"tokenizer.json (the output already has one)"}));
  EXPECT_EQ(read(dst / "tokenizer.json"), "already here");
}

TEST(CompanionFiles, WeightAndConfigNames) {
  for (const char* name : {"config.json", "hf_quant_config.json", "model.safetensors", "model.safetensors.index.json",
                           "pytorch_model.bin", "model.gguf", "flax_model.msgpack", "tf_model.h5"})
    EXPECT_TRUE(is_weight_or_config_file(name)) << name;
  for (const char* name : {"tokenizer.json", "generation_config.json", "chat_template.json", "README.md", "config.json.bak"})
    EXPECT_FALSE(is_weight_or_config_file(name)) << name;
}

}  // namespace
}  // namespace fp4serve
