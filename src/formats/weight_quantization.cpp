#include "formats/weight_quantization.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "formats/number_formats.h"
#include "formats/scale_rules.h"

namespace fp4serve {
namespace {

constexpr int64_t kFp8Block = 128;
constexpr int64_t kMxfp4Block = 32;
constexpr int64_t kNvfp4Block = 16;

// Checks dimensions and that every element is finite (naming the first bad one).
void check_matrix(std::span<const float> w, int64_t n, int64_t k, const std::string& name) {
  FP4SERVE_CHECK(n > 0 && k > 0, "{}: bad weight dimensions {} x {}", name, n, k);
  FP4SERVE_CHECK(static_cast<int64_t>(w.size()) == n * k, "{}: {} values given for a {} x {} weight", name, w.size(), n,
                 k);
  for (int64_t i = 0; i < n * k; ++i) {
    FP4SERVE_CHECK(std::isfinite(w[i]), "{}: element [{}, {}] is {}; only finite weights can be quantized", name, i / k,
                   i % k, w[i]);
  }
}

void check_k_multiple(int64_t k, int64_t block, std::string_view encoding, const std::string& name) {
  FP4SERVE_CHECK(k % block == 0, "{}: {} needs in_features to be a multiple of {}, got {}", name, encoding, block, k);
}

LinearWeight make_linear(WeightEncoding encoding, int64_t n, int64_t k, std::string name) {
  LinearWeight out;
  out.encoding = encoding;
  out.out_features = n;
  out.in_features = k;
  out.name = std::move(name);
  return out;
}

float block_amax(std::span<const float> w, int64_t k, int64_t row_begin, int64_t row_end, int64_t col_begin,
                 int64_t col_end) {
  float amax = 0.0f;
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t c = col_begin; c < col_end; ++c) amax = std::max(amax, std::fabs(w[r * k + c]));
  }
  return amax;
}

void store_f32(TensorView& t, int64_t index, float value) {
  std::memcpy(mutable_data(t) + index * static_cast<int64_t>(sizeof(float)), &value, sizeof(float));
}

void store_byte(TensorView& t, int64_t index, uint8_t value) { mutable_data(t)[index] = static_cast<std::byte>(value); }

}  // namespace

float absolute_max(std::span<const float> w, const std::string& name) {
  float amax = 0.0f;
  for (size_t i = 0; i < w.size(); ++i) {
    FP4SERVE_CHECK(std::isfinite(w[i]), "{}: element {} is {}", name, i, w[i]);
    amax = std::max(amax, std::fabs(w[i]));
  }
  return amax;
}

LinearWeight make_dense_weight(std::span<const float> w, int64_t n, int64_t k, WeightEncoding encoding,
                               std::string name) {
  FP4SERVE_CHECK(
      encoding == WeightEncoding::kBF16 || encoding == WeightEncoding::kF16 || encoding == WeightEncoding::kF32,
      "{}: make_dense_weight makes bf16, f16 or f32, not {}", name, encoding_name(encoding));
  FP4SERVE_CHECK(n > 0 && k > 0 && static_cast<int64_t>(w.size()) == n * k, "{}: {} values given for a {} x {} weight",
                 name, w.size(), n, k);
  LinearWeight out = make_linear(encoding, n, k, std::move(name));
  const DType dtype = encoding == WeightEncoding::kBF16  ? DType::BF16
                      : encoding == WeightEncoding::kF16 ? DType::F16
                                                         : DType::F32;
  out.weight = make_owned_tensor(dtype, {n, k}, out.name + ".weight");
  for (int64_t i = 0; i < n * k; ++i) {
    if (dtype == DType::F32) {
      store_f32(out.weight, i, w[i]);
    } else {
      const uint16_t bits = dtype == DType::BF16 ? encode_bf16(w[i]) : encode_f16(w[i]);
      std::memcpy(mutable_data(out.weight) + 2 * i, &bits, sizeof(bits));
    }
  }
  return out;
}

LinearWeight quantize_fp8_block(std::span<const float> w, int64_t n, int64_t k, Fp8ScaleFormat scale_format,
                                std::string name) {
  check_matrix(w, n, k, name);
  LinearWeight out = make_linear(WeightEncoding::kFP8Block, n, k, std::move(name));
  const int64_t row_blocks = (n + kFp8Block - 1) / kFp8Block;
  const int64_t col_blocks = (k + kFp8Block - 1) / kFp8Block;
  const bool e8m0 = scale_format == Fp8ScaleFormat::kE8M0;
  out.weight = make_owned_tensor(DType::F8_E4M3, {n, k}, out.name + ".weight");
  out.scale = make_owned_tensor(e8m0 ? DType::F8_E8M0 : DType::F32, {row_blocks, col_blocks}, out.name + ".scale");
  for (int64_t rb = 0; rb < row_blocks; ++rb) {
    const int64_t r0 = rb * kFp8Block, r1 = std::min(n, r0 + kFp8Block);
    for (int64_t cb = 0; cb < col_blocks; ++cb) {
      const int64_t c0 = cb * kFp8Block, c1 = std::min(k, c0 + kFp8Block);
      const float amax = block_amax(w, k, r0, r1, c0, c1);
      float scale;
      if (e8m0) {
        const uint8_t code = fp8_scale_ue8m0(amax);
        store_byte(out.scale, rb * col_blocks + cb, code);
        scale = decode_e8m0(code);
      } else {
        scale = fp8_scale_f32(amax);
        store_f32(out.scale, rb * col_blocks + cb, scale);
      }
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) {
          const float scaled = std::clamp(w[r * k + c] / scale, -448.0f, 448.0f);
          store_byte(out.weight, r * k + c, encode_e4m3(scaled));
        }
      }
    }
  }
  return out;
}

LinearWeight quantize_mxfp4(std::span<const float> w, int64_t n, int64_t k, std::string name) {
  check_matrix(w, n, k, name);
  check_k_multiple(k, kMxfp4Block, "mxfp4", name);
  LinearWeight out = make_linear(WeightEncoding::kMXFP4, n, k, std::move(name));
  out.weight = make_owned_tensor(DType::I8, {n, k / 2}, out.name + ".weight");
  out.scale = make_owned_tensor(DType::F8_E8M0, {n, k / kMxfp4Block}, out.name + ".scale");
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t b = 0; b < k / kMxfp4Block; ++b) {
      const int64_t c0 = b * kMxfp4Block;
      const uint8_t scale_code = fp4_scale_ue8m0(block_amax(w, k, r, r + 1, c0, c0 + kMxfp4Block));
      store_byte(out.scale, r * (k / kMxfp4Block) + b, scale_code);
      const float scale = decode_e8m0(scale_code);
      for (int64_t c = c0; c < c0 + kMxfp4Block; c += 2) {
        const uint8_t even = encode_e2m1(std::clamp(w[r * k + c] / scale, -6.0f, 6.0f));
        const uint8_t odd = encode_e2m1(std::clamp(w[r * k + c + 1] / scale, -6.0f, 6.0f));
        store_byte(out.weight, r * (k / 2) + c / 2, pack_e2m1(even, odd));
      }
    }
  }
  return out;
}

LinearWeight quantize_nvfp4(std::span<const float> w, int64_t n, int64_t k, const Nvfp4Options& options,
                            std::string name) {
  check_matrix(w, n, k, name);
  check_k_multiple(k, kNvfp4Block, "nvfp4", name);
  FP4SERVE_CHECK(std::isfinite(options.input_scale) && options.input_scale >= 0.0f,
                 "{}: input_scale {} must be finite and non-negative", name, options.input_scale);
  const float own_amax = absolute_max(w, name);
  const float global_amax = options.global_amax.value_or(own_amax);
  FP4SERVE_CHECK(std::isfinite(global_amax) && global_amax >= 0.0f,
                 "{}: global amax {} must be finite and non-negative", name, global_amax);
  const float global_scale = nvfp4_global_scale(global_amax);
  // A denormal global scale would lose the block scales' precision (or underflow their product).
  FP4SERVE_CHECK(global_scale >= 0x1p-126f || own_amax == 0.0f,
                 "{}: global amax {} is too small for NVFP4 (weight_scale_2 = {}) for a tensor whose amax is {}", name,
                 global_amax, global_scale, own_amax);

  LinearWeight out = make_linear(WeightEncoding::kNVFP4, n, k, std::move(name));
  out.global_scale = global_scale;
  out.input_scale = options.input_scale;
  out.weight = make_owned_tensor(DType::U8, {n, k / 2}, out.name + ".weight");
  out.scale = make_owned_tensor(DType::F8_E4M3, {n, k / kNvfp4Block}, out.name + ".weight_scale");
  constexpr uint8_t kUnitScale = 0x38;  // E4M3 1.0
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t b = 0; b < k / kNvfp4Block; ++b) {
      const int64_t c0 = b * kNvfp4Block;
      if (global_scale == 0.0f) {  // all-zero tensor: bytes stay zero
        store_byte(out.scale, r * (k / kNvfp4Block) + b, kUnitScale);
        continue;
      }
      const uint8_t scale_code = nvfp4_block_scale(block_amax(w, k, r, r + 1, c0, c0 + kNvfp4Block), global_scale);
      store_byte(out.scale, r * (k / kNvfp4Block) + b, scale_code);
      // ModelOpt divides by the rounded block scale times the global scale (one fp32 product).
      const float divisor = decode_e4m3(scale_code) * global_scale;
      for (int64_t c = c0; c < c0 + kNvfp4Block; c += 2) {
        uint8_t codes[2];
        for (int j = 0; j < 2; ++j) {
          const float q = w[r * k + c + j] / divisor;
          codes[j] = q == 0.0f ? 0 : encode_e2m1(q);  // ModelOpt's sign bit is (q < 0): -0 gives +0
        }
        store_byte(out.weight, r * (k / 2) + c / 2, pack_e2m1(codes[0], codes[1]));
      }
    }
  }
  return out;
}

LinearWeight quantize_weight(std::span<const float> w, int64_t n, int64_t k, WeightEncoding encoding, std::string name,
                             const QuantizeOptions& options) {
  switch (encoding) {
    case WeightEncoding::kBF16:
    case WeightEncoding::kF16:
    case WeightEncoding::kF32:
      return make_dense_weight(w, n, k, encoding, std::move(name));
    case WeightEncoding::kFP8Block:
      return quantize_fp8_block(w, n, k, options.fp8_scale_format, std::move(name));
    case WeightEncoding::kMXFP4:
      return quantize_mxfp4(w, n, k, std::move(name));
    case WeightEncoding::kNVFP4:
      return quantize_nvfp4(w, n, k, options.nvfp4, std::move(name));
  }
  fail("{}: unknown weight encoding {}", name, static_cast<int>(encoding));
}

}  // namespace fp4serve
