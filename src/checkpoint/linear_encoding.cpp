#include "checkpoint/linear_encoding.h"

#include <cmath>
#include <cstring>

#include "base/error.h"

namespace fp4serve {
namespace {

std::string describe(const TensorView& t) {
  return fmt::format("{} {} {}", t.origin, dtype_name(t.dtype), shape_string(t.shape));
}

void expect_shape(const TensorView& t, const std::vector<int64_t>& expected, const std::string& canonical,
                  const std::string& what) {
  if (t.shape != expected) {
    fail("{}: shape {}; expected {} ({} of {})", t.origin, shape_string(t.shape), shape_string(expected), what,
         canonical);
  }
}

bool is_scalar(const TensorView& t) { return t.shape.empty() || (t.shape.size() == 1 && t.shape[0] == 1); }

void forbid(const TensorView* t, const char* why) {
  if (t != nullptr) fail("{}: unexpected here: {}", t->origin, why);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

float read_scalar_f32(const TensorView& t) {
  if (t.dtype != DType::F32 || !is_scalar(t))
    fail("{}: expected an F32 scalar (shape [] or [1]), got {} {}", t.origin, dtype_name(t.dtype),
         shape_string(t.shape));
  float value;
  std::memcpy(&value, t.data, sizeof(value));
  return value;
}

LinearWeight detect_linear(const StoredLinear& s, int64_t n, int64_t k, const std::string& canonical,
                           const std::string& formula) {
  if (s.weight == nullptr) {
    const TensorView* any = s.block_scale ? s.block_scale : s.global_scale ? s.global_scale : s.input_scale;
    fail("{}: scale tensor without its weight {}.weight (module {})", any ? any->origin : s.module, s.module,
         canonical);
  }
  const TensorView& w = *s.weight;
  LinearWeight lw;
  lw.name = canonical;
  lw.out_features = n;
  lw.in_features = k;
  lw.weight = w;
  const std::string logical = fmt::format("[{}, {}] = {}", n, k, formula);

  switch (w.dtype) {
    case DType::BF16:
    case DType::F16:
    case DType::F32: {
      lw.encoding = w.dtype == DType::BF16 ? WeightEncoding::kBF16
                    : w.dtype == DType::F16 ? WeightEncoding::kF16
                                            : WeightEncoding::kF32;
      forbid(s.block_scale, "an unquantized (float) weight carries no block scale");
      forbid(s.global_scale, "an unquantized (float) weight carries no weight_scale_2");
      forbid(s.input_scale, "an unquantized (float) weight carries no input_scale");
      expect_shape(w, {n, k}, canonical, "weight " + logical);
      return lw;
    }
    case DType::F8_E4M3: {
      lw.encoding = WeightEncoding::kFP8Block;
      expect_shape(w, {n, k}, canonical, "FP8 weight " + logical);
      if (s.block_scale == nullptr)
        fail("{}: FP8 weight without a block scale ({}.scale or {}.weight_scale_inv)", w.origin, s.module, s.module);
      forbid(s.global_scale, "per-tensor FP8 scales (weight_scale_2) are not supported; FP8 uses 128x128 blocks");
      forbid(s.input_scale, "static FP8 activation scales (input_scale) are not supported");
      const TensorView& sc = *s.block_scale;
      if (sc.dtype != DType::F8_E8M0 && sc.dtype != DType::F32)
        fail("{}: FP8 block scale must be F8_E8M0 or F32, got {}", sc.origin, dtype_name(sc.dtype));
      expect_shape(sc, {ceil_div(n, 128), ceil_div(k, 128)}, canonical, "FP8 block-128 scale [ceil(N/128), ceil(K/128)]");
      lw.scale = sc;
      return lw;
    }
    case DType::I8:
    case DType::U8: {
      if (s.block_scale == nullptr)
        fail("{}: packed FP4 weight ({}) without a block scale ({}.scale or {}.weight_scale)", w.origin,
             dtype_name(w.dtype), s.module, s.module);
      const TensorView& sc = *s.block_scale;
      if (sc.dtype == DType::F8_E8M0) {
        lw.encoding = WeightEncoding::kMXFP4;
        if (k % 32 != 0) fail("{}: MXFP4 needs K divisible by 32; {} has K = {}", w.origin, canonical, k);
        forbid(s.global_scale, "MXFP4 (E8M0 block scales) has no weight_scale_2");
        forbid(s.input_scale, "MXFP4 (E8M0 block scales) has no input_scale");
        expect_shape(w, {n, k / 2}, canonical, "packed FP4 weight [N, K/2] for " + logical);
        expect_shape(sc, {n, k / 32}, canonical, "MXFP4 scale [N, K/32]");
      } else if (sc.dtype == DType::F8_E4M3) {
        lw.encoding = WeightEncoding::kNVFP4;
        if (k % 16 != 0) fail("{}: NVFP4 needs K divisible by 16; {} has K = {}", w.origin, canonical, k);
        expect_shape(w, {n, k / 2}, canonical, "packed FP4 weight [N, K/2] for " + logical);
        expect_shape(sc, {n, k / 16}, canonical, "NVFP4 scale [N, K/16]");
        if (s.global_scale == nullptr)
          fail("{}: NVFP4 weight without its global scale {}.weight_scale_2", w.origin, s.module);
        lw.global_scale = read_scalar_f32(*s.global_scale);
        if (!std::isfinite(lw.global_scale) || !(lw.global_scale > 0))
          fail("{}: global scale (weight_scale_2) is {}; it must be finite and positive", s.global_scale->origin,
               lw.global_scale);
        if (s.input_scale != nullptr) {
          lw.input_scale = read_scalar_f32(*s.input_scale);
          if (!std::isfinite(lw.input_scale) || !(lw.input_scale > 0))
            fail("{}: input_scale is {}; it must be finite and positive", s.input_scale->origin, lw.input_scale);
        }
      } else {
        fail("{}: block scale of a packed FP4 weight must be F8_E8M0 (MXFP4) or F8_E4M3 (NVFP4), got {}", sc.origin,
             dtype_name(sc.dtype));
      }
      lw.scale = sc;
      return lw;
    }
    default:
      fail("{}: a linear weight cannot be {}; expected BF16, F16, F32, F8_E4M3 or packed FP4 (I8/U8)", describe(w),
           dtype_name(w.dtype));
  }
}

namespace {

// Branch-free scans (they vectorize): whether any scale is bad. Only then is the
// slow loop below run to find and name the first bad element.
bool any_bad_scale(const TensorView& sc) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(sc.data);
  const size_t n = static_cast<size_t>(sc.numel());
  uint8_t bad = 0;
  switch (sc.dtype) {
    case DType::F8_E8M0:
      for (size_t i = 0; i < n; ++i) bad |= bytes[i] == 0xFF;
      return bad != 0;
    case DType::F8_E4M3:
      // Positive finite non-zero E4M3 is exactly 0x01..0x7E.
      for (size_t i = 0; i < n; ++i) bad |= (bytes[i] == 0) | (bytes[i] >= 0x7F);
      return bad != 0;
    case DType::F32:
      for (size_t i = 0; i < n; ++i) {
        float v;
        std::memcpy(&v, bytes + 4 * i, sizeof(v));
        bad |= !(v > 0.0f && v <= 3.4028235e38f);
      }
      return bad != 0;
    default:
      return true;
  }
}

}  // namespace

void check_scale_values(const LinearWeight& lw) {
  const TensorView& sc = lw.scale;
  if (sc.nbytes == 0 || !any_bad_scale(sc)) return;
  const auto* bytes = reinterpret_cast<const uint8_t*>(sc.data);
  const int64_t count = sc.numel();
  auto bad = [&](int64_t i, const char* what) {
    const int64_t cols = sc.shape.size() == 2 ? sc.shape[1] : 1;
    fail("{}: {} block scale at [{}, {}] (of {})", sc.origin, what, i / cols, i % cols, lw.name);
  };
  switch (sc.dtype) {
    case DType::F8_E8M0:
      // 2^(e - 127): no zero, no sign; 0xFF is NaN.
      for (int64_t i = 0; i < count; ++i)
        if (bytes[i] == 0xFF) bad(i, "NaN (0xFF)");
      break;
    case DType::F8_E4M3:
      // NVFP4 block scales are positive E4M3: 0x7F/0xFF NaN, sign bit = negative, 0x00 zero.
      for (int64_t i = 0; i < count; ++i) {
        const uint8_t b = bytes[i];
        if ((b & 0x7F) == 0x7F) bad(i, "NaN");
        if (b & 0x80) bad(i, (b & 0x7F) == 0 ? "zero (-0)" : "negative");
        if (b == 0) bad(i, "zero");
      }
      break;
    case DType::F32:
      for (int64_t i = 0; i < count; ++i) {
        float v;
        std::memcpy(&v, bytes + 4 * i, sizeof(v));
        if (std::isnan(v)) bad(i, "NaN");
        if (std::isinf(v)) bad(i, "infinite");
        if (v == 0) bad(i, "zero");
        if (v < 0) bad(i, "negative");
      }
      break;
    default:
      fail("{}: unexpected scale dtype {}", sc.origin, dtype_name(sc.dtype));
  }
}

}  // namespace fp4serve
