#include "formats/activation_quantization.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "base/error.h"
#include "formats/number_formats.h"
#include "formats/scale_rules.h"

namespace fp4serve {
namespace {

constexpr uint8_t kE4M3NaN = 0x7F;
constexpr uint8_t kE8M0NaN = 0xFF;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

void check_shape(size_t size, int64_t rows, int64_t cols, int64_t block_size, const char* what) {
  FP4SERVE_CHECK(rows >= 0 && cols > 0 && block_size > 0, "{}: bad shape {} x {} with block size {}", what, rows, cols,
                 block_size);
  FP4SERVE_CHECK(static_cast<int64_t>(size) == rows * cols, "{}: {} values given for {} x {}", what, size, rows, cols);
}

int64_t blocks_per_row(int64_t cols, int64_t block_size) { return (cols + block_size - 1) / block_size; }

struct BlockStats {
  float amax = 0.0f;  // over finite elements
  bool all_finite = true;
};

BlockStats block_stats(const float* x, int64_t count) {
  BlockStats stats;
  for (int64_t i = 0; i < count; ++i) {
    if (std::isfinite(x[i])) {
      stats.amax = std::max(stats.amax, std::fabs(x[i]));
    } else {
      stats.all_finite = false;
    }
  }
  return stats;
}

float fp8_activation_scale(float amax, ActivationScale rule) {
  if (rule == ActivationScale::kUe8m0) return decode_e8m0(fp8_scale_ue8m0(amax));
  return std::max(amax, 1e-4f) * (1.0f / 448.0f);
}

uint8_t fp8_code(float x, float scale) {
  if (!std::isfinite(x)) return kE4M3NaN;
  return encode_e4m3(std::clamp(x / scale, -448.0f, 448.0f));
}

uint8_t fp4_code(float x, float scale) { return encode_e2m1(std::clamp(x / scale, -6.0f, 6.0f)); }

// Calls visit(row, first_col, count) for every block, in row-major order.
template <typename Visit>
void for_each_block(int64_t rows, int64_t cols, int64_t block_size, Visit visit) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c0 = 0; c0 < cols; c0 += block_size) visit(r, c0, std::min(block_size, cols - c0));
  }
}

}  // namespace

void quantize_activations_fp8(std::span<const float> x, int64_t rows, int64_t cols, int64_t block_size,
                              ActivationScale rule, std::span<uint8_t> codes, std::span<float> scales) {
  check_shape(x.size(), rows, cols, block_size, "FP8 activation quantization");
  FP4SERVE_CHECK(codes.size() == x.size(), "FP8 activation quantization: {} code slots for {} values", codes.size(),
                 x.size());
  const int64_t nb = blocks_per_row(cols, block_size);
  FP4SERVE_CHECK(static_cast<int64_t>(scales.size()) == rows * nb,
                 "FP8 activation quantization: {} scale slots, {} rows x {} blocks need {}", scales.size(), rows, nb,
                 rows * nb);
  for_each_block(rows, cols, block_size, [&](int64_t r, int64_t c0, int64_t count) {
    const float* block = &x[r * cols + c0];
    const float scale = fp8_activation_scale(block_stats(block, count).amax, rule);
    scales[r * nb + c0 / block_size] = scale;
    for (int64_t i = 0; i < count; ++i) codes[r * cols + c0 + i] = fp8_code(block[i], scale);
  });
}

void simulate_activations_fp8(std::span<float> x, int64_t rows, int64_t cols, int64_t block_size,
                              ActivationScale rule) {
  check_shape(x.size(), rows, cols, block_size, "FP8 activation simulation");
  for_each_block(rows, cols, block_size, [&](int64_t r, int64_t c0, int64_t count) {
    float* block = &x[r * cols + c0];
    const float scale = fp8_activation_scale(block_stats(block, count).amax, rule);
    for (int64_t i = 0; i < count; ++i) block[i] = decode_e4m3(fp8_code(block[i], scale)) * scale;
  });
}

void quantize_activations_fp4(std::span<const float> x, int64_t rows, int64_t cols, int64_t block_size,
                              std::span<uint8_t> packed, std::span<uint8_t> scales) {
  check_shape(x.size(), rows, cols, block_size, "FP4 activation quantization");
  FP4SERVE_CHECK(cols % 2 == 0 && block_size % 2 == 0,
                 "FP4 activation quantization: columns ({}) and block size ({}) must be even", cols, block_size);
  FP4SERVE_CHECK(packed.size() * 2 == x.size(), "FP4 activation quantization: {} packed bytes for {} values",
                 packed.size(), x.size());
  const int64_t nb = blocks_per_row(cols, block_size);
  FP4SERVE_CHECK(static_cast<int64_t>(scales.size()) == rows * nb,
                 "FP4 activation quantization: {} scale slots, {} rows x {} blocks need {}", scales.size(), rows, nb,
                 rows * nb);
  for_each_block(rows, cols, block_size, [&](int64_t r, int64_t c0, int64_t count) {
    const float* block = &x[r * cols + c0];
    const BlockStats stats = block_stats(block, count);
    const uint8_t scale_code = fp4_scale_ue8m0(stats.amax);
    scales[r * nb + c0 / block_size] = stats.all_finite ? scale_code : kE8M0NaN;
    const float scale = decode_e8m0(scale_code);
    for (int64_t i = 0; i < count; i += 2) {
      packed[(r * cols + c0 + i) / 2] = pack_e2m1(fp4_code(block[i], scale), fp4_code(block[i + 1], scale));
    }
  });
}

void simulate_activations_fp4(std::span<float> x, int64_t rows, int64_t cols, int64_t block_size) {
  check_shape(x.size(), rows, cols, block_size, "FP4 activation simulation");
  for_each_block(rows, cols, block_size, [&](int64_t r, int64_t c0, int64_t count) {
    float* block = &x[r * cols + c0];
    const float scale = decode_e8m0(fp4_scale_ue8m0(block_stats(block, count).amax));
    for (int64_t i = 0; i < count; ++i) {
      block[i] = std::isfinite(block[i]) ? decode_e2m1(fp4_code(block[i], scale)) * scale : kNaN;
    }
  });
}

}  // namespace fp4serve
