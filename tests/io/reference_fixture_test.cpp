// Our reader against a file written by the reference implementation
// (huggingface safetensors 0.8 + PyTorch 2.11; tests/io/fixtures/make_reference_fixture.py),
// with the dtype, shape and raw bytes PyTorch reported for each tensor.
#include <nlohmann/json.hpp>
#include <set>

#include "io/safetensors.h"
#include "io_test_support.h"

namespace fp4serve {
namespace {

std::string hex_of(const TensorView& t) {
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (size_t i = 0; i < t.nbytes; ++i) {
    const auto b = static_cast<uint8_t>(t.data[i]);
    hex += digits[b >> 4];
    hex += digits[b & 15];
  }
  return hex;
}

TEST(ReferenceFixture, EveryTensorMatchesWhatPyTorchWrote) {
  const std::string dir = std::string(FP4SERVE_SOURCE_DIR) + "/tests/io/fixtures/";
  const auto expected = nlohmann::json::parse(testing::read_file(dir + "reference_all_dtypes.json"));
  auto file = SafetensorsFile::open(dir + "reference_all_dtypes.safetensors");

  using StringMap = std::map<std::string, std::string>;
  EXPECT_EQ(file->metadata(), expected["metadata"].get<StringMap>());
  ASSERT_EQ(file->tensor_names().size(), expected["tensors"].size());
  for (const auto& [name, want] : expected["tensors"].items()) {
    SCOPED_TRACE(name);
    const TensorView& t = file->tensor(name);
    EXPECT_EQ(dtype_name(t.dtype), want["dtype"].get<std::string>());
    EXPECT_EQ(t.shape, want["shape"].get<std::vector<int64_t>>());
    EXPECT_EQ(hex_of(t), want["hex"].get<std::string>());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype), 0u);
  }
  // All 13 dtypes are present.
  std::set<std::string> dtypes;
  for (const auto& name : file->tensor_names()) dtypes.insert(std::string(dtype_name(file->tensor(name).dtype)));
  EXPECT_EQ(dtypes.size(), 13u);
}

}  // namespace
}  // namespace fp4serve
