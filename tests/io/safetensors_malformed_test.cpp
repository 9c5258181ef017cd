// One test per malformed safetensors file: each must be refused with an Error that
// names the file, the tensor at fault where there is one, and the reason.
#include "io/safetensors.h"
#include "io/safetensors_header.h"
#include "io_test_support.h"

namespace fp4serve {
namespace {

using testing::bytes_of;
using testing::expect_error;
using testing::le_u64;
using testing::safetensors_bytes;
using testing::ScratchDir;
using testing::write_file;

class Malformed : public ::testing::Test {
 protected:
  // Writes `bytes` as bad.safetensors and expects opening it to fail naming the
  // file and each of `parts`.
  void expect_refused(const std::string& bytes, std::vector<std::string> parts) {
    const std::string path = write_file(dir_.file("bad.safetensors"), bytes);
    parts.push_back(path);
    expect_error([&] { SafetensorsFile::open(path); }, parts);
  }
  // A header with one tensor entry `body` named "w" and `data` behind it.
  void expect_entry_refused(const std::string& body, const std::string& data, std::vector<std::string> parts) {
    SCOPED_TRACE(body);
    parts.push_back("tensor 'w'");
    expect_refused(safetensors_bytes(R"({"w":)" + body + "}", data), parts);
  }

  ScratchDir dir_;
};

const std::string kGood = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
const std::string kEight(8, 'x');

TEST_F(Malformed, EmptyFile) { expect_refused("", {"0 bytes, too short"}); }
TEST_F(Malformed, ShorterThanTheLengthPrefix) { expect_refused(bytes_of({2, 0, 0}), {"3 bytes, too short"}); }

TEST_F(Malformed, HeaderLengthPastTheEnd) {
  expect_refused(le_u64(1000) + "{}", {"header length 1000 runs past the end of the file (10 bytes)"});
}

TEST_F(Malformed, HeaderLengthOverTheLimit) {
  expect_refused(le_u64(100'000'001) + "{}", {"header length 100000001 exceeds the limit of 100000000"});
  expect_refused(le_u64(~uint64_t{0}) + "{}", {"exceeds the limit"});
}

TEST_F(Malformed, TruncatedData) {
  // The header promises 8 bytes of data; the file stops after 5.
  expect_entry_refused(kGood, "12345", {"data_offsets [0, 8] run past the end of the data section (5 bytes"});
}

TEST_F(Malformed, TruncatedHeader) {
  const std::string header = R"({"w":)" + kGood + "}";
  expect_refused(le_u64(header.size()) + header.substr(0, 20), {"runs past the end of the file"});
}

TEST_F(Malformed, BadJson) {
  expect_refused(safetensors_bytes(R"({"w":{"dtype":"F32",)", ""),
                 {"header is not valid JSON (last key read: 'w' > 'dtype')", "parse error"});
  expect_refused(safetensors_bytes(R"({"w":{"dtype":F32}})", ""),
                 {"header is not valid JSON (last key read: 'w' > 'dtype')"});
  expect_refused(safetensors_bytes(R"({"a":1}x)", ""), {"header is not valid JSON"});
}

TEST_F(Malformed, NulByteInHeader) {
  // The JSON library would stop reading at the NUL and accept the rest unread.
  expect_refused(safetensors_bytes(std::string(R"({"a":1} )") + '\0' + "garbage", ""),
                 {"header holds a NUL byte at offset 8"});
}

TEST_F(Malformed, HeaderNotUtf8) {
  expect_refused(safetensors_bytes("{\"w\xff\":" + kGood + "}", kEight), {"header is not valid JSON", "UTF-8"});
}

TEST_F(Malformed, HeaderNotAnObject) {
  expect_refused(safetensors_bytes("[1, 2]", ""), {"header must be a JSON object, not array"});
  expect_refused(safetensors_bytes("", ""), {"header is not valid JSON"});
}

TEST_F(Malformed, EntryNotAnObject) { expect_entry_refused("[1]", "", {"entry must be an object, not array"}); }

TEST_F(Malformed, WrongFieldTypes) {
  expect_entry_refused(R"({"dtype":4,"shape":[2],"data_offsets":[0,8]})", kEight, {"dtype must be a string"});
  expect_entry_refused(R"({"dtype":"F32","shape":"2","data_offsets":[0,8]})", kEight,
                       {"shape must be an array, not string"});
  expect_entry_refused(R"({"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})", kEight,
                       {"shape must hold non-negative integers, not number"});
  expect_entry_refused(R"({"dtype":"F32","shape":[[2]],"data_offsets":[0,8]})", kEight,
                       {"shape must hold non-negative integers, not array"});
  expect_entry_refused(R"({"dtype":"F32","shape":[2],"data_offsets":"0-8"})", kEight,
                       {"data_offsets must be an array of two integers"});
  expect_entry_refused(R"({"dtype":"F32","shape":[2],"data_offsets":[0,4,8]})", kEight,
                       {"data_offsets must be an array of two integers"});
  expect_entry_refused(R"({"dtype":"F32","shape":[2],"data_offsets":[0,null]})", kEight,
                       {"data_offsets must hold non-negative integers, not null"});
}

TEST_F(Malformed, MissingAndExtraFields) {
  expect_entry_refused(R"({"dtype":"F32","data_offsets":[0,8]})", kEight, {"missing field 'shape'"});
  expect_entry_refused(R"({"shape":[2],"data_offsets":[0,8]})", kEight, {"missing field 'dtype'"});
  expect_entry_refused(R"({"dtype":"F32","shape":[2]})", kEight, {"missing field 'data_offsets'"});
  expect_entry_refused(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8],"scale":1})", kEight,
                       {"unexpected field 'scale'"});
}

TEST_F(Malformed, UnknownDtype) {
  expect_entry_refused(R"({"dtype":"F4","shape":[2],"data_offsets":[0,1]})", "x", {"unknown dtype 'F4'"});
  expect_entry_refused(R"({"dtype":"float32","shape":[2],"data_offsets":[0,8]})", kEight, {"unknown dtype 'float32'"});
  expect_entry_refused(R"({"dtype":"f32","shape":[2],"data_offsets":[0,8]})", kEight, {"unknown dtype 'f32'"});
}

TEST_F(Malformed, ShapeAndByteLengthDisagree) {
  expect_entry_refused(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})", kEight,
                       {"dtype F32 x shape [3] needs 12 bytes, but data_offsets [0, 8] span 8"});
  expect_entry_refused(R"({"dtype":"BF16","shape":[],"data_offsets":[0,8]})", kEight,
                       {"dtype BF16 x shape [] needs 2 bytes"});
}

TEST_F(Malformed, NegativeDimension) {
  expect_entry_refused(R"({"dtype":"U8","shape":[-8],"data_offsets":[0,8]})", kEight,
                       {"shape holds negative value -8"});
}

TEST_F(Malformed, DimensionBeyondInt64) {
  expect_entry_refused(R"({"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,8]})", kEight,
                       {"dimension 9223372036854775808 does not fit"});
}

TEST_F(Malformed, OverflowingShapeProduct) {
  // 2^32 * 2^32 elements wrap to 0 in 64 bits; 2^62 F32 elements wrap the byte count.
  expect_entry_refused(R"({"dtype":"U8","shape":[4294967296,4294967296,0],"data_offsets":[0,0]})", "",
                       {"overflows 64-bit byte counts"});
  expect_entry_refused(R"({"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]})", "",
                       {"overflows 64-bit byte counts"});
}

TEST_F(Malformed, NumberTooLargeForJson) {
  expect_refused(safetensors_bytes(R"({"w":{"dtype":"U8","shape":[1e400],"data_offsets":[0,8]}})", kEight),
                 {"header is not valid JSON (last key read: 'w' > 'shape')", "number overflow"});
}

TEST_F(Malformed, NegativeOrReversedOffsets) {
  expect_entry_refused(R"({"dtype":"U8","shape":[8],"data_offsets":[-8,0]})", kEight,
                       {"data_offsets holds negative value -8"});
  expect_entry_refused(R"({"dtype":"U8","shape":[0],"data_offsets":[8,0]})", kEight,
                       {"data_offsets [8, 0] end before they begin"});
}

TEST_F(Malformed, RangePastTheEnd) {
  expect_entry_refused(R"({"dtype":"U8","shape":[8],"data_offsets":[4,12]})", kEight,
                       {"data_offsets [4, 12] run past the end of the data section (8 bytes"});
  expect_entry_refused(R"({"dtype":"U8","shape":[0],"data_offsets":[18446744073709551615,18446744073709551615]})",
                       kEight, {"run past the end of the data section"});
}

TEST_F(Malformed, OverlappingRanges) {
  const std::string header = R"({"a":{"dtype":"U8","shape":[6],"data_offsets":[0,6]},)"
                             R"("b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})";
  expect_refused(safetensors_bytes(header, kEight),
                 {"tensor 'b' (data_offsets [4, 8]) overlaps tensor 'a' (data_offsets [0, 6])"});
  const std::string same = R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})";
  expect_refused(safetensors_bytes(same, kEight), {"overlaps", "'a'", "'b'"});
}

TEST_F(Malformed, GapBetweenTensors) {
  const std::string header = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                             R"("b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})";
  expect_refused(safetensors_bytes(header, kEight),
                 {"tensor 'b' starts at data offset 4, leaving 2 unused bytes before it"});
}

TEST_F(Malformed, BytesAfterTheLastTensor) {
  const std::string header = R"({"a":{"dtype":"U8","shape":[6],"data_offsets":[0,6]}})";
  expect_refused(safetensors_bytes(header, kEight), {"2 unused bytes after the last tensor 'a'"});
  expect_refused(safetensors_bytes("{}", kEight), {"data section holds 8 bytes but the header lists no tensor"});
}

TEST_F(Malformed, MetadataNotStrings) {
  expect_refused(safetensors_bytes(R"({"__metadata__":{"format":"pt","step":1000}})", ""),
                 {"__metadata__ 'step' must be a string, not number"});
  expect_refused(safetensors_bytes(R"({"__metadata__":["pt"]})", ""),
                 {"__metadata__ must be an object of strings, not array"});
  expect_refused(safetensors_bytes(R"({"__metadata__":{"nested":{"a":"b"}}})", ""),
                 {"__metadata__ 'nested' must be a string, not object"});
}

TEST_F(Malformed, DuplicateTensor) {
  const std::string header = R"({"w":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                             R"("w":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})";
  expect_refused(safetensors_bytes(header, kEight), {"header has key 'w' twice"});
}

TEST_F(Malformed, DuplicateFieldInsideTensor) {
  const std::string header = R"({"w":{"dtype":"U8","dtype":"I8","shape":[8],"data_offsets":[0,8]}})";
  expect_refused(safetensors_bytes(header, kEight), {"header has key 'dtype' twice inside 'w'"});
}

TEST_F(Malformed, NestedTooDeeply) {
  const std::string deep = R"({"__metadata__":)" + std::string(40, '[') + std::string(40, ']') + "}";
  expect_refused(safetensors_bytes(deep, ""), {"header nests deeper than 32 levels"});
  // Far deeper than any stack would survive if parsed recursively.
  const std::string very_deep = "{\"a\":" + std::string(100000, '[');
  expect_refused(safetensors_bytes(very_deep, ""), {"nests deeper"});
}

TEST_F(Malformed, FromBytesNamesTheLabel) {
  const std::string bytes = safetensors_bytes(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", kEight);
  expect_error(
      [&] {
        SafetensorsFile::from_bytes(nullptr, reinterpret_cast<const std::byte*>(bytes.data()), bytes.size(), "label-x");
      },
      {"label-x", "tensor 'w'", "needs 12 bytes"});
}

TEST_F(Malformed, NotARegularFileOrMissing) {
  expect_error([&] { SafetensorsFile::open(dir_.path().string()); }, {dir_.path().string(), "not a regular file"});
  expect_error([&] { SafetensorsFile::open(dir_.file("absent.safetensors")); },
               {dir_.file("absent.safetensors"), "cannot open", "No such file"});
}

}  // namespace
}  // namespace fp4serve
