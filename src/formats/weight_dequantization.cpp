#include "formats/weight_dequantization.h"

#include <cstring>

#include "base/error.h"
#include "formats/number_formats.h"

namespace fp4serve {
namespace {

// Tensor data may sit at any byte offset of a mapped file, so multi-byte reads go through memcpy.
template <typename T>
T load(const TensorView& t, int64_t index) {
  T value;
  std::memcpy(&value, t.data + index * static_cast<int64_t>(sizeof(T)), sizeof(T));
  return value;
}

uint8_t byte_at(const TensorView& t, int64_t index) { return static_cast<uint8_t>(t.data[index]); }

uint8_t e2m1_code(const TensorView& packed, int64_t k_dim, int64_t n, int64_t k) {
  const uint8_t byte = byte_at(packed, n * (k_dim / 2) + k / 2);
  return (k % 2 == 0) ? e2m1_even(byte) : e2m1_odd(byte);
}

float fp8_block_scale(const TensorView& scale, int64_t k_dim, int64_t n, int64_t k) {
  const int64_t blocks_per_row = (k_dim + 127) / 128;
  const int64_t index = (n / 128) * blocks_per_row + k / 128;
  return scale.dtype == DType::F8_E8M0 ? decode_e8m0(byte_at(scale, index)) : load<float>(scale, index);
}

float element(const LinearWeight& w, int64_t n, int64_t k) {
  const int64_t k_dim = w.in_features;
  switch (w.encoding) {
    case WeightEncoding::kBF16:
      return decode_bf16(load<uint16_t>(w.weight, n * k_dim + k));
    case WeightEncoding::kF16:
      return decode_f16(load<uint16_t>(w.weight, n * k_dim + k));
    case WeightEncoding::kF32:
      return load<float>(w.weight, n * k_dim + k);
    case WeightEncoding::kFP8Block:
      return decode_e4m3(byte_at(w.weight, n * k_dim + k)) * fp8_block_scale(w.scale, k_dim, n, k);
    case WeightEncoding::kMXFP4:
      return decode_e2m1(e2m1_code(w.weight, k_dim, n, k)) * decode_e8m0(byte_at(w.scale, n * (k_dim / 32) + k / 32));
    case WeightEncoding::kNVFP4: {
      const float block_scale = decode_e4m3(byte_at(w.scale, n * (k_dim / 16) + k / 16));
      return (decode_e2m1(e2m1_code(w.weight, k_dim, n, k)) * block_scale) * w.global_scale;
    }
  }
  fail("{}: unknown weight encoding {}", linear_weight_label(w), static_cast<int>(w.encoding));
}

}  // namespace

void dequantize_rows(const LinearWeight& weight, int64_t first_row, int64_t row_count, std::span<float> out) {
  validate_linear_weight(weight);
  FP4SERVE_CHECK(first_row >= 0 && row_count >= 0 && first_row + row_count <= weight.out_features,
                 "{}: rows [{}, {}) are outside its {} rows", linear_weight_label(weight), first_row,
                 first_row + row_count, weight.out_features);
  const int64_t k_dim = weight.in_features;
  FP4SERVE_CHECK(static_cast<int64_t>(out.size()) == row_count * k_dim,
                 "{}: output buffer holds {} floats, {} rows of {} need {}", linear_weight_label(weight), out.size(),
                 row_count, k_dim, row_count * k_dim);
  for (int64_t r = 0; r < row_count; ++r) {
    for (int64_t k = 0; k < k_dim; ++k) out[r * k_dim + k] = element(weight, first_row + r, k);
  }
}

std::vector<float> dequantize_to_f32(const LinearWeight& weight) {
  validate_linear_weight(weight);
  std::vector<float> out(static_cast<size_t>(weight.out_features * weight.in_features));
  dequantize_rows(weight, 0, weight.out_features, out);
  return out;
}

}  // namespace fp4serve
