// Element types and a non-owning view of tensor bytes: the currency between
// io/ (which maps files), checkpoint/ (which names and validates) and model/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fp4serve {

// The safetensors dtypes we accept, by their safetensors names.
enum class DType : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2, F8_E8M0 };

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);
// Parses a safetensors dtype string; returns false for an unknown one.
bool parse_dtype(std::string_view name, DType* out);

int64_t element_count(const std::vector<int64_t>& shape);
std::string shape_string(const std::vector<int64_t>& shape);  // "[2048, 4096]"

// Bytes of one tensor, with whatever keeps them alive (a mapped file, a vector).
struct TensorView {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;
  size_t nbytes = 0;
  std::shared_ptr<const void> owner;  // keeps `data` valid; may be null for static data
  std::string origin;                 // "file.safetensors: tensor.name", for error messages

  int64_t numel() const { return element_count(shape); }
  template <typename T>
  const T* as() const { return reinterpret_cast<const T*>(data); }
};

// A tensor that owns its bytes (results of quantization, generated test models).
TensorView make_owned_tensor(DType dtype, std::vector<int64_t> shape, std::string origin = {});
// Mutable access to an owned tensor made by make_owned_tensor.
inline std::byte* mutable_data(TensorView& t) { return const_cast<std::byte*>(t.data); }

}  // namespace fp4serve
