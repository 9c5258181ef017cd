// Reading files whose every byte is written out in the test: the dtype codes
// below are the IEEE / OCP encodings, looked up by hand, not produced by our code.
#include <cstring>

#include "io/safetensors.h"
#include "io_test_support.h"

namespace fp4serve {
namespace {

using testing::bytes_of;
using testing::safetensors_bytes;
using testing::ScratchDir;
using testing::write_file;

template <typename T>
T load(const TensorView& t) {
  T value;
  std::memcpy(&value, t.data, sizeof(T));
  return value;
}

std::vector<uint8_t> raw(const TensorView& t) {
  const auto* p = reinterpret_cast<const uint8_t*>(t.data);
  return std::vector<uint8_t>(p, p + t.nbytes);
}

TEST(SafetensorsReader, FullyHandWrittenFile) {
  // {"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}} is 53 bytes = 0x35.
  const std::string header = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})";
  ASSERT_EQ(header.size(), 0x35u);
  const std::string bytes = bytes_of({0x35, 0, 0, 0, 0, 0, 0, 0}) + header + bytes_of({7, 9});
  ScratchDir dir;
  auto file = SafetensorsFile::open(write_file(dir.file("a.safetensors"), bytes));
  EXPECT_EQ(file->path(), dir.file("a.safetensors"));
  EXPECT_EQ(file->file_size(), 8u + 0x35u + 2u);
  EXPECT_EQ(file->tensor_names(), std::vector<std::string>{"a"});
  const TensorView& a = file->tensor("a");
  EXPECT_EQ(a.dtype, DType::U8);
  EXPECT_EQ(a.shape, std::vector<int64_t>{2});
  EXPECT_EQ(raw(a), (std::vector<uint8_t>{7, 9}));
  // Zero copy: the view points into the mapping, just past the header.
  EXPECT_EQ(a.data, file->mapped_data() + 8 + 0x35);
  EXPECT_EQ(a.origin, dir.file("a.safetensors") + ": a");
  EXPECT_TRUE(file->metadata().empty());
}

TEST(SafetensorsReader, EveryDtype) {
  // One element of each dtype, laid out by hand, largest first.
  const std::string header = R"({"f64":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},)"
                             R"("i64":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},)"
                             R"("f32":{"dtype":"F32","shape":[1],"data_offsets":[16,20]},)"
                             R"("i32":{"dtype":"I32","shape":[1],"data_offsets":[20,24]},)"
                             R"("f16":{"dtype":"F16","shape":[1],"data_offsets":[24,26]},)"
                             R"("bf16":{"dtype":"BF16","shape":[1],"data_offsets":[26,28]},)"
                             R"("i16":{"dtype":"I16","shape":[1],"data_offsets":[28,30]},)"
                             R"("i8":{"dtype":"I8","shape":[1],"data_offsets":[30,31]},)"
                             R"("u8":{"dtype":"U8","shape":[1],"data_offsets":[31,32]},)"
                             R"("bool":{"dtype":"BOOL","shape":[1],"data_offsets":[32,33]},)"
                             R"("e4m3":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[33,34]},)"
                             R"("e5m2":{"dtype":"F8_E5M2","shape":[1],"data_offsets":[34,35]},)"
                             R"("e8m0":{"dtype":"F8_E8M0","shape":[1],"data_offsets":[35,36]}})";
  const std::string data = bytes_of({
      0,    0,    0,    0,    0,    0,    0xF8, 0x3F,  // F64 1.5 = 0x3FF8000000000000
      0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,  // I64 -1
      0,    0,    0,    0xC0,                          // F32 -2.0 = 0xC0000000
      0x04, 0x03, 0x02, 0x01,                          // I32 0x01020304
      0x00, 0x3C,                                      // F16 1.0 = 0x3C00
      0x80, 0x3F,                                      // BF16 1.0 = 0x3F80
      0xFE, 0xFF,                                      // I16 -2
      0x80,                                            // I8 -128
      0xFF,                                            // U8 255
      0x01,                                            // BOOL true
      0x38,                                            // E4M3 1.0: exponent 7 (bias 7)
      0x3C,                                            // E5M2 1.0: exponent 15 (bias 15)
      0x7F,                                            // E8M0 2^0: 127 (bias 127)
  });
  ScratchDir dir;
  auto file = SafetensorsFile::open(write_file(dir.file("all.safetensors"), safetensors_bytes(header, data)));

  const std::vector<std::string> in_data_order = {"f64", "i64", "f32",  "i32",  "f16",  "bf16", "i16",
                                                  "i8",  "u8",  "bool", "e4m3", "e5m2", "e8m0"};
  EXPECT_EQ(file->tensor_names(), in_data_order);
  const std::vector<std::pair<std::string, DType>> dtypes = {
      {"f64", DType::F64},     {"i64", DType::I64},   {"f32", DType::F32},      {"i32", DType::I32},
      {"f16", DType::F16},     {"bf16", DType::BF16}, {"i16", DType::I16},      {"i8", DType::I8},
      {"u8", DType::U8},       {"bool", DType::BOOL}, {"e4m3", DType::F8_E4M3}, {"e5m2", DType::F8_E5M2},
      {"e8m0", DType::F8_E8M0}};
  for (const auto& [name, dtype] : dtypes) {
    EXPECT_EQ(file->tensor(name).dtype, dtype) << name;
    EXPECT_EQ(file->tensor(name).shape, std::vector<int64_t>{1}) << name;
  }
  EXPECT_EQ(load<double>(file->tensor("f64")), 1.5);
  EXPECT_EQ(load<int64_t>(file->tensor("i64")), -1);
  EXPECT_EQ(load<float>(file->tensor("f32")), -2.0f);
  EXPECT_EQ(load<int32_t>(file->tensor("i32")), 0x01020304);
  EXPECT_EQ(load<uint16_t>(file->tensor("f16")), 0x3C00);
  EXPECT_EQ(load<uint16_t>(file->tensor("bf16")), 0x3F80);
  EXPECT_EQ(load<int16_t>(file->tensor("i16")), -2);
  EXPECT_EQ(load<int8_t>(file->tensor("i8")), -128);
  EXPECT_EQ(load<uint8_t>(file->tensor("u8")), 255);
  EXPECT_EQ(load<uint8_t>(file->tensor("bool")), 1);
  EXPECT_EQ(load<uint8_t>(file->tensor("e4m3")), 0x38);
  EXPECT_EQ(load<uint8_t>(file->tensor("e5m2")), 0x3C);
  EXPECT_EQ(load<uint8_t>(file->tensor("e8m0")), 0x7F);
}

TEST(SafetensorsReader, ShapesScalarsEmptyTensorsMetadataAndPadding) {
  // Keys out of data order, a 0-d scalar, a zero-element tensor, metadata, and
  // a header of 217 bytes padded with 7 spaces so the data starts at 8 + 224
  // (aligned, as writers do, which makes as<float>() legal).
  const std::string header = R"({"__metadata__":{"format":"pt","note":"x"},)"
                             R"("w":{"dtype":"F32","shape":[2,3],"data_offsets":[4,28]},)"
                             R"("empty":{"dtype":"BF16","shape":[0,4],"data_offsets":[28,28]},)"
                             R"("scale":{"data_offsets":[0,4],"shape":[],"dtype":"F32"}}       )";
  ASSERT_EQ(header.size(), 224u);
  std::string data = bytes_of({0, 0, 0x80, 0x3F});                // scale = 1.0f
  for (int i = 0; i < 6; ++i) data += bytes_of({0, 0, 0, 0x40});  // w = 2.0f each
  ScratchDir dir;
  auto file = SafetensorsFile::open(write_file(dir.file("m.safetensors"), safetensors_bytes(header, data)));
  EXPECT_EQ(file->tensor_names(), (std::vector<std::string>{"scale", "w", "empty"}));
  EXPECT_EQ(file->metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "x"}}));
  EXPECT_EQ(file->tensor("scale").shape, std::vector<int64_t>{});
  EXPECT_EQ(file->tensor("scale").numel(), 1);
  EXPECT_EQ(load<float>(file->tensor("scale")), 1.0f);
  const TensorView& w = file->tensor("w");
  EXPECT_EQ(w.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(w.nbytes, 24u);
  ASSERT_EQ(reinterpret_cast<uintptr_t>(w.data) % alignof(float), 0u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(w.as<float>()[i], 2.0f);
  EXPECT_EQ(file->tensor("empty").nbytes, 0u);
  EXPECT_EQ(file->tensor("empty").numel(), 0);
  EXPECT_TRUE(file->contains("w"));
  EXPECT_FALSE(file->contains("__metadata__"));
}

TEST(SafetensorsReader, LeadingWhitespaceIsAcceptedAsByTheReferenceReader) {
  ScratchDir dir;
  const std::string header = " \n{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
  auto file = SafetensorsFile::open(write_file(dir.file("ws.safetensors"), safetensors_bytes(header, "z")));
  EXPECT_EQ(file->tensor_names(), std::vector<std::string>{"a"});
}

TEST(SafetensorsReader, HeaderOnlyFileWithNoTensors) {
  ScratchDir dir;
  auto file = SafetensorsFile::open(write_file(dir.file("e.safetensors"), safetensors_bytes("{}", "")));
  EXPECT_TRUE(file->tensor_names().empty());
}

TEST(SafetensorsReader, ViewsOutliveTheFileObject) {
  const std::string header = R"({"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}})";
  ScratchDir dir;
  TensorView kept;
  {
    auto file = SafetensorsFile::open(write_file(dir.file("k.safetensors"), safetensors_bytes(header, "xyz")));
    kept = file->tensor("a");
  }
  std::filesystem::remove(dir.file("k.safetensors"));  // the mapping stays valid after unlink
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(kept.data), kept.nbytes), "xyz");
}

TEST(SafetensorsReader, FromBytesUsesTheLabelAndOwner) {
  const std::string header = R"({"t":{"dtype":"I16","shape":[1],"data_offsets":[0,2]}})";
  auto buffer = std::make_shared<std::string>(safetensors_bytes(header, bytes_of({0x34, 0x12})));
  auto file = SafetensorsFile::from_bytes(buffer, reinterpret_cast<const std::byte*>(buffer->data()), buffer->size(),
                                          "in-memory");
  EXPECT_EQ(file->path(), "in-memory");
  EXPECT_EQ(load<int16_t>(file->tensor("t")), 0x1234);
  EXPECT_EQ(file->tensor("t").owner, buffer);
}

TEST(SafetensorsReader, MissingTensorNamesFileAndTensor) {
  ScratchDir dir;
  auto file = SafetensorsFile::open(write_file(dir.file("x.safetensors"), safetensors_bytes("{}", "")));
  testing::expect_error([&] { file->tensor("nope"); }, {dir.file("x.safetensors"), "'nope'"});
}

}  // namespace
}  // namespace fp4serve
