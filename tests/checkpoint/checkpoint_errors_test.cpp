// Corrupted and inconsistent checkpoints: each gives an Error naming the file or
// tensor (or, for w1/w3 global-scale mismatches, a warning), never a crash.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/inspect_report.h"
#include "checkpoint/test_model.h"
#include "checkpoint_test_support.h"

namespace fp4serve {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::find_tensor;
using testing::reference_decode;
using testing::rewrite;
using testing::ScratchDir;
using testing::quiet;

class CheckpointErrors : public ::testing::Test {
 protected:
  // A small checkpoint in `layout`, single file model.safetensors.
  std::string make(OutputLayout layout, uint64_t shard_bytes = uint64_t{1} << 30) {
    TestModelOptions options;
    options.layout = layout;
    options.preset = "small";
    options.seed = 9;
    options.shard_bytes = shard_bytes;
    write_test_model(dir_.str(), options);
    return dir_.str();
  }
  std::string file() const { return dir_ / "model.safetensors"; }

  std::string load_error() {
    try {
      load_checkpoint(dir_.str(), quiet());
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  }

  // Sets byte `index` of a tensor's data.
  void set_byte(const std::string& tensor, size_t index, uint8_t value) {
    rewrite(file(), [&](std::vector<NamedTensor>& t) {
      mutable_data(find_tensor(t, tensor).tensor)[index] = std::byte{value};
    });
  }
  void set_f32(const std::string& tensor, float value) {
    rewrite(file(), [&](std::vector<NamedTensor>& t) {
      std::memcpy(mutable_data(find_tensor(t, tensor).tensor), &value, 4);
    });
  }

  ScratchDir dir_{"ckpt"};
};

TEST_F(CheckpointErrors, TruncatedShard) {
  make(OutputLayout::kNative);
  std::filesystem::resize_file(file(), std::filesystem::file_size(file()) - 1000);
  EXPECT_THAT(load_error(), HasSubstr("model.safetensors"));
}

TEST_F(CheckpointErrors, HeaderRangePastTheEnd) {
  make(OutputLayout::kNative);
  // Rewrite the header so that the last tensor's range ends past the file.
  std::ifstream in(file(), std::ios::binary);
  std::string bytes(std::istreambuf_iterator<char>(in), {});
  uint64_t header_len;
  std::memcpy(&header_len, bytes.data(), 8);
  nlohmann::json header = nlohmann::json::parse(bytes.substr(8, header_len));
  std::string victim;
  uint64_t max_end = 0;
  for (auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    if (info["data_offsets"][1].get<uint64_t>() > max_end) {
      max_end = info["data_offsets"][1].get<uint64_t>();
      victim = name;
    }
  }
  header[victim]["data_offsets"][1] = max_end + 4096;
  header[victim]["shape"] = nlohmann::json::array({max_end + 4096 - header[victim]["data_offsets"][0].get<uint64_t>()});
  header[victim]["dtype"] = "U8";
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');
  const uint64_t new_len = text.size();
  std::ofstream out(file(), std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(&new_len), 8);
  out << text << bytes.substr(8 + header_len);
  out.close();
  EXPECT_THAT(load_error(), AllOf(HasSubstr("model.safetensors"), HasSubstr(victim)));
}

TEST_F(CheckpointErrors, ShardMissingFromTheIndex) {
  make(OutputLayout::kNative, /*shard_bytes=*/100000);
  std::string shard;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.str())) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("model-00002-of-", 0) == 0) shard = name;
  }
  ASSERT_TRUE(std::filesystem::exists(dir_ / shard));
  std::filesystem::remove(dir_ / shard);
  EXPECT_THAT(load_error(), HasSubstr(shard));
}

TEST_F(CheckpointErrors, NaNInfZeroNegativeGlobalScales) {
  make(OutputLayout::kNvfp4);
  const std::string tensor = "model.layers.0.self_attn.q_a_proj.weight_scale_2";
  for (float bad : {std::nanf(""), INFINITY, 0.0f, -0.5f}) {
    set_f32(tensor, bad);
    EXPECT_THAT(load_error(), AllOf(HasSubstr(tensor), HasSubstr("global scale"))) << bad;
  }
  // input_scale: positive and finite, like the global scale.
  make(OutputLayout::kNvfp4);
  const std::string input_scale = "model.layers.0.self_attn.q_a_proj.input_scale";
  for (float bad : {std::nanf(""), INFINITY, 0.0f, -0.5f}) {
    set_f32(input_scale, bad);
    EXPECT_THAT(load_error(), AllOf(HasSubstr(input_scale), HasSubstr("must be finite and positive"))) << bad;
  }
}

TEST_F(CheckpointErrors, NaNZeroNegativeNvfp4BlockScales) {
  make(OutputLayout::kNvfp4);
  const std::string tensor = "model.layers.2.mlp.experts.3.down_proj.weight_scale";
  const struct {
    uint8_t byte;
    const char* what;
  } cases[] = {{0x7F, "NaN"}, {0xFF, "NaN"}, {0x00, "zero"}, {0x80, "zero"}, {0xB8, "negative"}};
  for (const auto& c : cases) {
    make(OutputLayout::kNvfp4);
    set_byte(tensor, 37, c.byte);
    EXPECT_THAT(load_error(), AllOf(HasSubstr(tensor), HasSubstr(c.what), HasSubstr("layers.2.ffn.experts.3.w2")))
        << int(c.byte);
  }
}

TEST_F(CheckpointErrors, NaNE8M0Scales) {
  make(OutputLayout::kNative);
  set_byte("layers.1.attn.wq_b.scale", 0, 0xFF);
  EXPECT_THAT(load_error(), AllOf(HasSubstr("layers.1.attn.wq_b.scale"), HasSubstr("NaN")));
  make(OutputLayout::kNative);
  set_byte("layers.3.ffn.experts.0.w1.scale", 5, 0xFF);
  EXPECT_THAT(load_error(), AllOf(HasSubstr("layers.3.ffn.experts.0.w1.scale"), HasSubstr("NaN")));
}

TEST_F(CheckpointErrors, WrongScaleShape) {
  make(OutputLayout::kNative);
  rewrite(file(), [](std::vector<NamedTensor>& t) {
    NamedTensor& s = find_tensor(t, "layers.0.ffn.experts.1.w2.scale");  // [64, 1] for K = 32
    s.tensor = make_owned_tensor(DType::F8_E8M0, {64, 2});
  });
  EXPECT_THAT(load_error(), AllOf(HasSubstr("layers.0.ffn.experts.1.w2.scale"), HasSubstr("[64, 2]"),
                                  HasSubstr("expected [64, 1]")));
}

TEST_F(CheckpointErrors, UnknownTensorsAreListed) {
  make(OutputLayout::kNative);
  rewrite(file(), [](std::vector<NamedTensor>& t) {
    t.push_back({"layers.0.attn.mystery.weight", make_owned_tensor(DType::BF16, {4})});
    t.push_back({"model.layers.0.self_attn.q_a_proj.weight", make_owned_tensor(DType::BF16, {4})});
  });
  EXPECT_THAT(load_error(), AllOf(HasSubstr("2 unknown tensor(s)"), HasSubstr("layers.0.attn.mystery.weight"),
                                  HasSubstr("model.layers.0.self_attn.q_a_proj.weight"),
                                  HasSubstr("1 of them are transformers names")));
}

TEST_F(CheckpointErrors, MissingTensorNamesTheModule) {
  make(OutputLayout::kNvfp4);
  rewrite(file(), [](std::vector<NamedTensor>& t) {
    std::erase_if(t, [](const NamedTensor& x) {
      return x.name == "model.layers.1.self_attn.compressor.position_bias" ||
             x.name.rfind("model.layers.3.self_attn.compressor.indexer.kv_proj.", 0) == 0;
    });
  });
  EXPECT_THAT(load_error(),
              AllOf(HasSubstr("2 tensor(s) missing"), HasSubstr("layers.1.attn.compressor.ape"),
                    HasSubstr("model.layers.1.self_attn.compressor.position_bias"),
                    HasSubstr("layers.3.attn.indexer.compressor.wkv (linear module")));
}

TEST_F(CheckpointErrors, ScaleWithoutWeightAndWeightWithoutScale) {
  make(OutputLayout::kNative);
  rewrite(file(), [](std::vector<NamedTensor>& t) {
    std::erase_if(t, [](const NamedTensor& x) { return x.name == "layers.2.attn.wkv.scale"; });
  });
  EXPECT_THAT(load_error(), AllOf(HasSubstr("layers.2.attn.wkv.weight"), HasSubstr("without a block scale")));
}

TEST_F(CheckpointErrors, TensorsTheConfigHasNoPlaceFor) {
  make(OutputLayout::kNative);
  rewrite(file(), [](std::vector<NamedTensor>& t) {
    t.push_back({"layers.0.ffn.gate.bias", make_owned_tensor(DType::F32, {4})});  // layer 0 is a hash layer
    t.push_back({"layers.7.attn_norm.weight", make_owned_tensor(DType::BF16, {64})});
  });
  EXPECT_THAT(load_error(), AllOf(HasSubstr("2 tensor(s) that this config has no place for"),
                                  HasSubstr("layers.0.ffn.gate.bias"), HasSubstr("layers.7.attn_norm.weight")));
}

TEST_F(CheckpointErrors, TwoNamesForOneTensor) {
  make(OutputLayout::kNative);
  rewrite(file(), [](std::vector<NamedTensor>& t) {
    TensorView copy = find_tensor(t, "layers.0.attn.wq_a.scale").tensor;
    t.push_back({"layers.0.attn.wq_a.weight_scale_inv", copy});
  });
  EXPECT_THAT(load_error(), AllOf(HasSubstr("layers.0.attn.wq_a.scale"), HasSubstr("weight_scale_inv"),
                                  HasSubstr("both map to layers.0.attn.wq_a")));
}

TEST_F(CheckpointErrors, WrongDtypesAndShapes) {
  make(OutputLayout::kNative);
  rewrite(file(), [](std::vector<NamedTensor>& t) {
    find_tensor(t, "layers.0.attn_norm.weight").tensor = make_owned_tensor(DType::I32, {64});
  });
  EXPECT_THAT(load_error(), AllOf(HasSubstr("layers.0.attn_norm.weight"), HasSubstr("dtype I32")));
  make(OutputLayout::kNative);
  rewrite(file(), [](std::vector<NamedTensor>& t) {
    find_tensor(t, "layers.1.attn.wq_a.weight").tensor = make_owned_tensor(DType::F8_E4M3, {32, 65});
  });
  EXPECT_THAT(load_error(), AllOf(HasSubstr("layers.1.attn.wq_a.weight"), HasSubstr("[32, 65]"),
                                  HasSubstr("q_lora_rank, hidden_size")));
}

TEST_F(CheckpointErrors, Tid2eidOutOfRangeOrRepeated) {
  make(OutputLayout::kNative);
  rewrite(file(), [](std::vector<NamedTensor>& t) {
    int64_t bad = 4;  // 4 experts: ids 0..3
    std::memcpy(mutable_data(find_tensor(t, "layers.1.ffn.gate.tid2eid").tensor) + 8 * 7, &bad, 8);
  });
  EXPECT_THAT(load_error(), AllOf(HasSubstr("layers.1.ffn.gate.tid2eid"), HasSubstr("expert id 4 at [3, 1]")));
  make(OutputLayout::kNative);
  rewrite(file(), [](std::vector<NamedTensor>& t) {
    std::byte* d = mutable_data(find_tensor(t, "layers.0.ffn.gate.tid2eid").tensor);
    std::memcpy(d + 8, d, 8);  // row 0: both slots the same expert
  });
  EXPECT_THAT(load_error(), AllOf(HasSubstr("layers.0.ffn.gate.tid2eid"), HasSubstr("token 0")));
}

TEST_F(CheckpointErrors, MissingOrBrokenConfig) {
  make(OutputLayout::kNative);
  std::ofstream(dir_ / "config.json") << "{\"vocab_size\": 64,";
  EXPECT_THAT(load_error(), AllOf(HasSubstr("config.json"), HasSubstr("not valid JSON")));
  std::filesystem::remove(dir_ / "config.json");
  EXPECT_THAT(load_error(), HasSubstr("no config.json"));
}

// w1/w3 of one expert with different NVFP4 global scales: a warning, and each half
// decodes with its own scale.
TEST_F(CheckpointErrors, GateUpGlobalScaleMismatchIsAWarningAndEachHalfKeepsItsScale) {
  make(OutputLayout::kNvfp4);
  const Checkpoint before = load_checkpoint(dir_.str(), quiet());
  const float w1_scale = before.linear("layers.2.ffn.experts.1.w1").global_scale;
  const float w3_scale = before.linear("layers.2.ffn.experts.1.w3").global_scale;
  ASSERT_EQ(w1_scale, w3_scale);
  const float new_w3 = w3_scale * 0.75f;
  set_f32("model.layers.2.mlp.experts.1.up_proj.weight_scale_2", new_w3);

  const Checkpoint ck = load_checkpoint(dir_.str(), quiet());
  ASSERT_EQ(ck.warnings.size(), 1u);
  EXPECT_THAT(ck.warnings[0], AllOf(HasSubstr("1 gate/up (w1/w3) pair(s)"), HasSubstr("layers.2.ffn.experts.1"),
                                    HasSubstr("each half is kept with its own scale")));
  const LinearWeight& w1 = ck.linear("layers.2.ffn.experts.1.w1");
  const LinearWeight& w3 = ck.linear("layers.2.ffn.experts.1.w3");
  EXPECT_EQ(w1.global_scale, w1_scale);
  EXPECT_EQ(w3.global_scale, new_w3);
  // The dequantized halves: w1 unchanged, w3 exactly 0.75x what it was (a power-of-two-free factor
  // applied once to each product of exact values).
  const TensorView w3_values = dequantized_tensor(ck, {true, "layers.2.ffn.experts.1.w3"});
  const std::vector<float> expected = reference_decode(w3);
  EXPECT_EQ(std::memcmp(w3_values.data, expected.data(), w3_values.nbytes), 0);
  const std::vector<float> old_w3 = reference_decode(before.linear("layers.2.ffn.experts.1.w3"));
  size_t nonzero = 0;
  for (size_t i = 0; i < old_w3.size(); ++i) {
    if (old_w3[i] == 0) continue;
    ++nonzero;
    EXPECT_NEAR(w3_values.as<float>()[i] / old_w3[i], 0.75, 1e-6);
  }
  EXPECT_GT(nonzero, 0u);
}

}  // namespace
}  // namespace fp4serve
