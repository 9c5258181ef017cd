#include "formats/linear_weight.h"

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "base/error.h"

namespace fp4serve {
namespace {

struct EncodingInfo {
  WeightEncoding encoding;
  std::string_view name;
};

constexpr std::array<EncodingInfo, 6> kEncodings{{
    {WeightEncoding::kBF16, "bf16"},
    {WeightEncoding::kF16, "f16"},
    {WeightEncoding::kF32, "f32"},
    {WeightEncoding::kFP8Block, "fp8-block"},
    {WeightEncoding::kMXFP4, "mxfp4"},
    {WeightEncoding::kNVFP4, "nvfp4"},
}};

constexpr int64_t kFp8BlockSize = 128;
constexpr int64_t kMxfp4BlockSize = 32;
constexpr int64_t kNvfp4BlockSize = 16;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

void check_tensor(const LinearWeight& w, const TensorView& t, std::string_view role,
                  std::initializer_list<DType> dtypes, const std::vector<int64_t>& shape) {
  bool dtype_ok = false;
  std::string expected;
  for (DType d : dtypes) {
    dtype_ok = dtype_ok || t.dtype == d;
    expected += (expected.empty() ? "" : " or ") + std::string(dtype_name(d));
  }
  FP4SERVE_CHECK(dtype_ok, "{} ({}): {} has dtype {}, expected {}", linear_weight_label(w), encoding_name(w.encoding),
                 role, dtype_name(t.dtype), expected);
  FP4SERVE_CHECK(t.shape == shape, "{} ({}, {} x {}): {} has shape {}, expected {}", linear_weight_label(w),
                 encoding_name(w.encoding), w.out_features, w.in_features, role, shape_string(t.shape),
                 shape_string(shape));
  const size_t expected_bytes = static_cast<size_t>(element_count(shape)) * dtype_size(t.dtype);
  FP4SERVE_CHECK(t.nbytes == expected_bytes, "{}: {} holds {} bytes, its shape {} needs {}", linear_weight_label(w),
                 role, t.nbytes, shape_string(t.shape), expected_bytes);
  FP4SERVE_CHECK(t.data != nullptr || t.nbytes == 0, "{}: {} has no data", linear_weight_label(w), role);
}

void check_block_multiple(const LinearWeight& w, int64_t block) {
  FP4SERVE_CHECK(w.in_features % block == 0, "{} ({}): in_features {} is not a multiple of the block size {}",
                 linear_weight_label(w), encoding_name(w.encoding), w.in_features, block);
}

}  // namespace

std::string linear_weight_label(const LinearWeight& w) {
  if (!w.name.empty()) return w.name;
  if (!w.weight.origin.empty()) return w.weight.origin;
  return "unnamed linear weight";
}

std::string_view encoding_name(WeightEncoding encoding) {
  for (const auto& info : kEncodings) {
    if (info.encoding == encoding) return info.name;
  }
  return "unknown";
}

bool parse_encoding_name(std::string_view name, WeightEncoding* out) {
  for (const auto& info : kEncodings) {
    if (info.name == name) {
      *out = info.encoding;
      return true;
    }
  }
  return false;
}

void validate_linear_weight(const LinearWeight& w) {
  const int64_t n = w.out_features;
  const int64_t k = w.in_features;
  FP4SERVE_CHECK(n > 0 && k > 0, "{} ({}): bad dimensions {} x {}", linear_weight_label(w), encoding_name(w.encoding),
                 n, k);
  const bool has_scale = w.scale.nbytes != 0 || !w.scale.shape.empty();
  switch (w.encoding) {
    case WeightEncoding::kBF16:
    case WeightEncoding::kF16:
    case WeightEncoding::kF32: {
      const DType dtype = w.encoding == WeightEncoding::kBF16  ? DType::BF16
                          : w.encoding == WeightEncoding::kF16 ? DType::F16
                                                               : DType::F32;
      check_tensor(w, w.weight, "weight", {dtype}, {n, k});
      FP4SERVE_CHECK(!has_scale, "{} ({}): an unquantized weight has a scale tensor", linear_weight_label(w),
                     encoding_name(w.encoding));
      return;
    }
    case WeightEncoding::kFP8Block:
      check_tensor(w, w.weight, "weight", {DType::F8_E4M3}, {n, k});
      check_tensor(w, w.scale, "scale", {DType::F8_E8M0, DType::F32},
                   {ceil_div(n, kFp8BlockSize), ceil_div(k, kFp8BlockSize)});
      return;
    case WeightEncoding::kMXFP4:
      check_block_multiple(w, kMxfp4BlockSize);
      check_tensor(w, w.weight, "weight", {DType::I8, DType::U8}, {n, k / 2});
      check_tensor(w, w.scale, "scale", {DType::F8_E8M0}, {n, k / kMxfp4BlockSize});
      return;
    case WeightEncoding::kNVFP4:
      check_block_multiple(w, kNvfp4BlockSize);
      check_tensor(w, w.weight, "weight", {DType::U8, DType::I8}, {n, k / 2});
      check_tensor(w, w.scale, "weight_scale", {DType::F8_E4M3}, {n, k / kNvfp4BlockSize});
      FP4SERVE_CHECK(std::isfinite(w.global_scale) && w.global_scale >= 0.0f,
                     "{} (nvfp4): weight_scale_2 is {}, expected a finite non-negative number", linear_weight_label(w),
                     w.global_scale);
      FP4SERVE_CHECK(std::isfinite(w.input_scale) && w.input_scale >= 0.0f,
                     "{} (nvfp4): input_scale is {}, expected a finite non-negative number", linear_weight_label(w),
                     w.input_scale);
      return;
  }
  fail("{}: unknown weight encoding {}", linear_weight_label(w), static_cast<int>(w.encoding));
}

}  // namespace fp4serve
