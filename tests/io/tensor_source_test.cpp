// TensorSource over the layouts checkpoints ship in, and every way an index and
// its shards can disagree. Shards are assembled by hand (U8 tensors whose bytes
// spell their names), independent of our writer.
#include "io/safetensors.h"
#include "io/safetensors_index.h"
#include "io_test_support.h"

namespace fp4serve {
namespace {

using testing::expect_error;
using testing::safetensors_bytes;
using testing::ScratchDir;
using testing::write_file;

// A shard holding one U8 tensor per name, each tensor's bytes being its name.
std::string shard_bytes(const std::vector<std::string>& names) {
  std::string header = "{";
  std::string data;
  for (const auto& name : names) {
    if (header.size() > 1) header += ",";
    header += "\"" + name + "\":{\"dtype\":\"U8\",\"shape\":[" + std::to_string(name.size()) + "],\"data_offsets\":[" +
              std::to_string(data.size()) + "," + std::to_string(data.size() + name.size()) + "]}";
    data += name;
  }
  return safetensors_bytes(header + "}", data);
}

std::string text_of(const TensorView& t) { return std::string(reinterpret_cast<const char*>(t.data), t.nbytes); }

const char* kTwoShardIndex = R"({"metadata":{"total_size":9,"format":"pt"},"weight_map":{)"
                             R"("a.w":"model-00001-of-00002.safetensors","b.w":"model-00001-of-00002.safetensors",)"
                             R"("c.w":"model-00002-of-00002.safetensors"}})";

class TwoShards : public ::testing::Test {
 protected:
  void SetUp() override {
    write_file(dir_.file("model-00001-of-00002.safetensors"), shard_bytes({"a.w", "b.w"}));
    write_file(dir_.file("model-00002-of-00002.safetensors"), shard_bytes({"c.w"}));
  }
  std::string index(const std::string& text) { return write_file(dir_.file("model.safetensors.index.json"), text); }
  std::string shard(int n) { return dir_.file("model-0000" + std::to_string(n) + "-of-00002.safetensors"); }

  ScratchDir dir_;
};

TEST_F(TwoShards, ThroughTheIndex) {
  index(kTwoShardIndex);
  for (const std::string& path : {dir_.path().string(), dir_.file("model.safetensors.index.json")}) {
    const TensorSource source = TensorSource::open(path);
    EXPECT_EQ(source.path(), path);
    EXPECT_EQ(source.tensor_names(), (std::vector<std::string>{"a.w", "b.w", "c.w"}));
    EXPECT_EQ(source.files().size(), 2u);
    for (const auto& name : source.tensor_names()) EXPECT_EQ(text_of(source.tensor(name)), name);
    EXPECT_EQ(source.tensor("c.w").origin, shard(2) + ": c.w");
    EXPECT_EQ(source.total_bytes(), 9u);
    EXPECT_EQ(source.index_metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"total_size", "9"}}));
    EXPECT_TRUE(source.contains("b.w"));
    EXPECT_FALSE(source.contains("d.w"));
    expect_error([&] { source.tensor("d.w"); }, {path, "no tensor 'd.w'"});
  }
}

TEST_F(TwoShards, DirectoryWithoutIndex) {
  const TensorSource source = TensorSource::open(dir_.path().string());
  EXPECT_EQ(source.tensor_names(), (std::vector<std::string>{"a.w", "b.w", "c.w"}));
  EXPECT_TRUE(source.index_metadata().empty());
}

TEST_F(TwoShards, OtherIndexName) {
  write_file(dir_.file("diffusion_pytorch_model.safetensors.index.json"), kTwoShardIndex);
  EXPECT_EQ(TensorSource::open(dir_.path().string()).tensor_names().size(), 3u);
  write_file(dir_.file("other.safetensors.index.json"), kTwoShardIndex);
  expect_error([&] { TensorSource::open(dir_.path().string()); }, {dir_.path().string(), "several shard indexes"});
}

TEST_F(TwoShards, ShardsTheIndexDoesNotNameAreLeftAlone) {
  write_file(dir_.file("consolidated.safetensors"), shard_bytes({"a.w", "b.w", "c.w"}));
  index(kTwoShardIndex);
  EXPECT_EQ(TensorSource::open(dir_.path().string()).files().size(), 2u);
}

TEST_F(TwoShards, IndexPointsToAMissingShard) {
  index(R"({"weight_map":{"a.w":"model-00001-of-00002.safetensors","b.w":"model-00001-of-00002.safetensors",)"
        R"("c.w":"model-00003-of-00003.safetensors"}})");
  expect_error([&] { TensorSource::open(dir_.path().string()); },
               {dir_.file("model.safetensors.index.json"), "tensor 'c.w'",
                dir_.file("model-00003-of-00003.safetensors"), "does not exist"});
}

TEST_F(TwoShards, IndexNamesATensorItsShardLacks) {
  index(R"({"weight_map":{"a.w":"model-00001-of-00002.safetensors","b.w":"model-00001-of-00002.safetensors",)"
        R"("c.w":"model-00002-of-00002.safetensors","d.w":"model-00002-of-00002.safetensors"}})");
  expect_error([&] { TensorSource::open(dir_.path().string()); },
               {dir_.file("model.safetensors.index.json"), "tensor 'd.w'", shard(2), "does not contain it"});
}

TEST_F(TwoShards, ShardHoldsATensorTheIndexDoesNotList) {
  index(R"({"weight_map":{"a.w":"model-00001-of-00002.safetensors","c.w":"model-00002-of-00002.safetensors"}})");
  expect_error([&] { TensorSource::open(dir_.path().string()); },
               {shard(1), "tensor 'b.w' is not listed in the index", dir_.file("model.safetensors.index.json")});
}

TEST_F(TwoShards, DuplicateTensorAcrossShardsWithIndex) {
  write_file(shard(2), shard_bytes({"b.w", "c.w"}));
  index(kTwoShardIndex);
  expect_error([&] { TensorSource::open(dir_.path().string()); },
               {"tensor 'b.w' is in two shards", shard(1), shard(2)});
}

TEST_F(TwoShards, DuplicateTensorAcrossShardsWithoutIndex) {
  write_file(shard(2), shard_bytes({"c.w", "a.w"}));
  expect_error([&] { TensorSource::open(dir_.path().string()); },
               {"tensor 'a.w' is in two shards", shard(1), shard(2)});
}

TEST_F(TwoShards, MalformedShardNamesShardAndTensor) {
  write_file(shard(2), safetensors_bytes(R"({"c.w":{"dtype":"U8","shape":[4],"data_offsets":[0,3]}})", "c.w"));
  index(kTwoShardIndex);
  expect_error([&] { TensorSource::open(dir_.path().string()); }, {shard(2), "tensor 'c.w'", "needs 4 bytes"});
}

TEST_F(TwoShards, MalformedIndexes) {
  const std::string path = dir_.file("model.safetensors.index.json");
  const auto refused = [&](const std::string& text, std::vector<std::string> parts) {
    index(text);
    parts.push_back(path);
    expect_error([&] { TensorSource::open(dir_.path().string()); }, parts);
  };
  refused(R"({"weight_map":{"a.w":)", {"index is not valid JSON (last key read: 'weight_map' > 'a.w')"});
  refused(R"([])", {"index must be a JSON object, not array"});
  refused(R"({"metadata":{}})", {"index has no weight_map"});
  refused(R"({"weight_map":["a.w"]})", {"weight_map must be an object, not array"});
  refused(R"({"weight_map":{"a.w":1}})", {"tensor 'a.w': weight_map value must be a shard file name, not number"});
  refused(R"({"weight_map":{"a.w":"../x.safetensors"}})", {"tensor 'a.w': shard '../x.safetensors' is not a relative"});
  refused(R"({"weight_map":{"a.w":"/etc/x.safetensors"}})", {"tensor 'a.w'", "not a relative path"});
  refused(R"({"weight_map":{"a.w":""}})", {"tensor 'a.w'", "not a relative path"});
  refused(R"({"weight_map":{"a.w":"sub//x"}})", {"tensor 'a.w'", "not a relative path"});
  refused(R"({"weight_map":{"a.w":"m1","a.w":"m2"}})", {"index has key 'a.w' twice inside 'weight_map'"});
  refused(R"({"weight_map":{},"shards":3})", {"unexpected top-level key 'shards'"});
  refused(R"({"metadata":[],"weight_map":{}})", {"metadata must be an object, not array"});
}

TEST(TensorSource, SingleFile) {
  ScratchDir dir;
  const std::string path = write_file(dir.file("one.safetensors"), shard_bytes({"x", "yy"}));
  const TensorSource source = TensorSource::open(path);
  EXPECT_EQ(source.tensor_names(), (std::vector<std::string>{"x", "yy"}));
  EXPECT_EQ(text_of(source.tensor("yy")), "yy");
  EXPECT_EQ(source.files().at(0)->path(), path);
}

TEST(TensorSource, NothingToOpen) {
  ScratchDir dir;
  expect_error([&] { TensorSource::open(dir.file("absent")); }, {dir.file("absent"), "no such file or directory"});
  expect_error([&] { TensorSource::open(dir.path().string()); },
               {dir.path().string(), "no *.safetensors files and no model.safetensors.index.json"});
}

TEST(SafetensorsIndex, ParsesWeightMapAndMetadata) {
  const SafetensorsIndex index = parse_safetensors_index(
      R"({"metadata":{"total_size":10,"note":"n","nested":{"a":[1,2]}},"weight_map":{"x":"sub/s1.safetensors"}})",
      "idx");
  EXPECT_EQ(index.weight_map, (std::map<std::string, std::string>{{"x", "sub/s1.safetensors"}}));
  EXPECT_EQ(index.metadata,
            (std::map<std::string, std::string>{{"nested", R"({"a":[1,2]})"}, {"note", "n"}, {"total_size", "10"}}));
}

}  // namespace
}  // namespace fp4serve
