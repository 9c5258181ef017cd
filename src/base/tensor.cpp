#include "base/tensor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <array>

#include "base/error.h"
#include "base/huge_pages.h"

namespace fp4serve {
namespace {

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  size_t size;
};

constexpr std::array<DTypeInfo, 13> kDTypes{{
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4}, {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
    {DType::U8, "U8", 1}, {DType::BOOL, "BOOL", 1}, {DType::F8_E4M3, "F8_E4M3", 1},
    {DType::F8_E5M2, "F8_E5M2", 1}, {DType::F8_E8M0, "F8_E8M0", 1},
}};

}  // namespace

size_t dtype_size(DType dtype) { return kDTypes[static_cast<size_t>(dtype)].size; }
std::string_view dtype_name(DType dtype) { return kDTypes[static_cast<size_t>(dtype)].name; }

bool parse_dtype(std::string_view name, DType* out) {
  for (const auto& info : kDTypes) {
    if (info.name == name) {
      *out = info.dtype;
      return true;
    }
  }
  return false;
}

int64_t element_count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

TensorView make_owned_tensor(DType dtype, std::vector<int64_t> shape, std::string origin) {
  for (int64_t d : shape) FP4SERVE_CHECK(d >= 0, "negative dimension in shape {} of {}", shape_string(shape), origin);
  TensorView t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.nbytes = static_cast<size_t>(t.numel()) * dtype_size(dtype);
  // Large tensors (weights made in memory: random checkpoints, conversions) on huge pages.
  std::shared_ptr<void> bytes = allocate_zeroed(t.nbytes);
  t.data = static_cast<const std::byte*>(bytes.get());
  t.owner = std::move(bytes);
  t.origin = std::move(origin);
  return t;
}

}  // namespace fp4serve
