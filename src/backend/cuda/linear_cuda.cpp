#ifdef FP4SERVE_HAVE_CUDA
#include "backend/cuda/linear_cuda.h"

#include <string>
#include <vector>

#include "base/error.h"
#include "formats/number_formats.h"
#include "backend/cuda/kernel_launchers.h"

namespace fp4serve::cuda {
namespace {

WeightKind kind_of(const LinearWeight& w) {
  switch (w.encoding) {
    case WeightEncoding::kBF16: return WeightKind::kBF16;
    case WeightEncoding::kFP8Block: return WeightKind::kFP8Block;
    case WeightEncoding::kMXFP4: return WeightKind::kMXFP4;
    case WeightEncoding::kNVFP4: return WeightKind::kNVFP4;
    case WeightEncoding::kF16:
    case WeightEncoding::kF32: break;
  }
  fail("{}: the CUDA kernels take BF16, FP8 block-128, MXFP4 or NVFP4 weights, not {}", w.name,
       encoding_name(w.encoding));
}

// FP8 block scales as floats [ceil(N/128), K/128], from E8M0 bytes or F32 values.
std::vector<float> widen_block_scales(const LinearWeight& w) {
  const TensorView& s = w.scale;
  std::vector<float> out(static_cast<size_t>(s.numel()));
  if (s.dtype == DType::F8_E8M0) {
    const uint8_t* codes = s.as<uint8_t>();
    for (size_t i = 0; i < out.size(); ++i) out[i] = decode_e8m0(codes[i]);
  } else if (s.dtype == DType::F32) {
    const float* values = s.as<float>();
    out.assign(values, values + out.size());
  } else {
    fail("{}: FP8 block scales must be F8_E8M0 or F32, got {}", w.name, dtype_name(s.dtype));
  }
  return out;
}

}  // namespace

DeviceLinear DeviceLinear::upload(const LinearWeight& weight) {
  validate_linear_weight(weight);
  DeviceLinear d;
  d.kind_ = kind_of(weight);
  d.n_ = weight.out_features;
  d.k_ = weight.in_features;
  d.global_scale_ = weight.encoding == WeightEncoding::kNVFP4 ? weight.global_scale : 1.0f;
  d.name_ = weight.name;
  FP4SERVE_CHECK(d.k_ % 128 == 0, "{}: in_features {} is not a multiple of 128 (CUDA kernels)", weight.name, d.k_);
  FP4SERVE_CHECK(d.n_ % 16 == 0, "{}: out_features {} is not a multiple of 16 (CUDA kernels)", weight.name, d.n_);
  d.weight_ = DeviceBuffer(weight.weight.nbytes);
  d.weight_.upload(weight.weight.data, weight.weight.nbytes);
  if (d.kind_ == WeightKind::kFP8Block) {
    const std::vector<float> scales = widen_block_scales(weight);
    d.scale_ = DeviceBuffer(scales.size() * sizeof(float));
    d.scale_.upload(scales.data(), scales.size() * sizeof(float));
  } else if (d.kind_ != WeightKind::kBF16) {
    d.scale_ = DeviceBuffer(weight.scale.nbytes);
    d.scale_.upload(weight.scale.data, weight.scale.nbytes);
  }
  return d;
}

DeviceLinear DeviceLinear::adopt(WeightKind kind, int64_t n, int64_t k, DeviceBuffer weight, DeviceBuffer scale,
                                 float global_scale, std::string name) {
  FP4SERVE_CHECK(k % 128 == 0 && n % 16 == 0, "{}: shape [{}, {}] needs N % 16 == 0 and K % 128 == 0", name, n, k);
  const bool fp4 = kind == WeightKind::kMXFP4 || kind == WeightKind::kNVFP4;
  const int64_t weight_bytes = kind == WeightKind::kBF16 ? 2 * n * k : (fp4 ? n * k / 2 : n * k);
  int64_t scale_bytes = 0;
  if (kind == WeightKind::kFP8Block) scale_bytes = (n + 127) / 128 * (k / 128) * 4;
  if (kind == WeightKind::kMXFP4) scale_bytes = n * (k / 32);
  if (kind == WeightKind::kNVFP4) scale_bytes = n * (k / 16);
  FP4SERVE_CHECK(static_cast<int64_t>(weight.bytes()) >= weight_bytes && static_cast<int64_t>(scale.bytes()) >= scale_bytes,
                 "{}: device buffers of {} and {} bytes, expected {} and {}", name, weight.bytes(), scale.bytes(),
                 weight_bytes, scale_bytes);
  DeviceLinear d;
  d.kind_ = kind;
  d.n_ = n;
  d.k_ = k;
  d.global_scale_ = kind == WeightKind::kNVFP4 ? global_scale : 1.0f;
  d.name_ = std::move(name);
  d.weight_ = std::move(weight);
  d.scale_ = std::move(scale);
  return d;
}

ActKind activation_kind(WeightKind kind, bool nvfp4_bf16_activations) {
  if (kind == WeightKind::kBF16) return ActKind::kBF16;
  if (kind == WeightKind::kNVFP4 && nvfp4_bf16_activations) return ActKind::kBF16;
  return ActKind::kFP8;
}

namespace {

// 4-bit weights at prefill take the BF16 wgmma kernel through exact BF16 copies of both operands
// (one pass over each; docs/kernels/tiled.md has the measurements); the mma.sync kernels remain
// for shapes the wgmma kernel does not take.
bool widens_for_prefill(const DenseGemmArgs& a) {
  if (a.weight != WeightKind::kMXFP4 && a.weight != WeightKind::kNVFP4) return false;
  DenseGemmArgs wide = a;
  wide.weight = WeightKind::kBF16;
  wide.act = ActKind::kBF16;
  wide.x_stride = a.act == ActKind::kBF16 ? a.x_stride : a.k;
  return wgmma_dense_supported(wide);
}

void prefill_through_bf16(GpuContext& ctx, const DenseGemmArgs& a, const std::string& name) {
  DenseGemmArgs wide = a;
  wide.weight = WeightKind::kBF16;
  wide.act = ActKind::kBF16;
  wide.w_scale = nullptr;
  wide.w = ctx.work(WorkSlot::kWideWeight, static_cast<size_t>(a.n * a.k * 2));
  check_cuda(launch_widen_fp4_weight(a.weight, a.w, a.w_scale, a.n, a.k, const_cast<void*>(wide.w), ctx.stream()),
             name + " (BF16 copy of the weight)");
  if (a.act == ActKind::kFP8) {
    void* x = ctx.work(WorkSlot::kWideActivations, static_cast<size_t>(a.m * a.k * 2));
    check_cuda(launch_widen_fp8_activations(a.x, a.x_scale, a.x_stride, a.m, a.k, x, ctx.stream()),
               name + " (BF16 copy of the activations)");
    wide.x = x;
    wide.x_stride = a.k;
    wide.x_scale = nullptr;
  }
  check_cuda(launch_wgmma_dense(wide, ctx.stream()), name + " (prefill GEMM)");
}

}  // namespace

void gemm(GpuContext& ctx, const DeviceLinear& w, const GemmInput& in, void* y, int64_t y_stride, Regime regime) {
  const bool takes_bf16 = in.act == ActKind::kBF16;
  FP4SERVE_CHECK(takes_bf16 == (activation_kind(w.kind(), takes_bf16) == ActKind::kBF16),
                 "{}: activations must be {} for this weight encoding", w.name(),
                 takes_bf16 ? "FP8 (E4M3 + per-128 scales)" : "BF16");
  FP4SERVE_CHECK(in.act == ActKind::kBF16 || in.x_scale != nullptr, "{}: FP8 activations need their scales",
                 w.name());
  FP4SERVE_CHECK(in.m >= 0, "{}: negative token count {}", w.name(), in.m);
  if (in.m == 0) return;
  FP4SERVE_CHECK(in.x != nullptr && y != nullptr, "{}: null activation or output pointer", w.name());
  DenseGemmArgs a;
  a.weight = w.kind();
  a.act = in.act;
  a.w = w.weight_data();
  a.w_scale = w.scale_data();
  a.global_scale = w.global_scale();
  a.n = w.out_features();
  a.k = w.in_features();
  a.x = in.x;
  a.x_scale = in.x_scale;
  a.x_stride = in.x_stride ? in.x_stride : a.k;
  a.m = in.m;
  a.y = y;
  a.y_stride = y_stride ? y_stride : a.n;
  FP4SERVE_CHECK(a.x_stride >= a.k && a.y_stride >= a.n, "{}: row strides smaller than the rows", w.name());
  FP4SERVE_CHECK(a.y_stride % 2 == 0, "{}: output row stride must be even", w.name());
  const bool decode = regime == Regime::kDecode || (regime == Regime::kAuto && in.m <= 16);
  if (decode) {
    FP4SERVE_CHECK(in.m <= 16, "{}: the decode kernels take at most 16 tokens, got {}", w.name(), in.m);
    if (wgmma_decode_chosen(a)) {
      const SkinnyPlan plan = plan_wgmma_decode(a.n, a.k, a.m, ctx.num_sms());
      const Scratch scratch = ctx.scratch(plan.partial_floats, plan.counters);
      check_cuda(launch_wgmma_decode(a, plan, scratch, ctx.stream()), w.name() + " (wgmma decode GEMM)");
      return;
    }
    const SkinnyPlan plan = plan_skinny_dense(a.weight, a.n, a.k, a.m, ctx.num_sms());
    const Scratch scratch = ctx.scratch(plan.partial_floats, plan.counters);
    check_cuda(launch_skinny_dense(a, plan, scratch, ctx.stream()), w.name() + " (decode GEMM)");
  } else if (widens_for_prefill(a)) {
    prefill_through_bf16(ctx, a, w.name());
  } else {
    check_cuda(launch_tiled_dense(a, ctx.stream()), w.name() + " (prefill GEMM)");
  }
}

void quantize_activations(GpuContext& ctx, const void* x_bf16, int64_t x_stride, int64_t m, int64_t k, void* codes,
                          float* scales) {
  FP4SERVE_CHECK(k % 128 == 0, "activation quantization: {} columns is not a multiple of 128", k);
  check_cuda(launch_quantize_activations_fp8(x_bf16, x_stride ? x_stride : k, m, k, codes, k, scales, ctx.stream()),
             "activation quantization");
}

void linear(GpuContext& ctx, const DeviceLinear& w, const void* x_bf16, int64_t m, void* y,
            bool nvfp4_bf16_activations, Regime regime) {
  GemmInput in;
  in.act = activation_kind(w.kind(), nvfp4_bf16_activations);
  in.m = m;
  if (in.act == ActKind::kBF16) {
    in.x = x_bf16;
  } else {
    void* codes = ctx.work(WorkSlot::kActCodes, static_cast<size_t>(m * w.in_features()));
    auto* scales = static_cast<float*>(
        ctx.work(WorkSlot::kActScales, static_cast<size_t>(m * (w.in_features() / 128)) * sizeof(float)));
    quantize_activations(ctx, x_bf16, w.in_features(), m, w.in_features(), codes, scales);
    in.x = codes;
    in.x_scale = scales;
  }
  gemm(ctx, w, in, y, 0, regime);
}

}  // namespace fp4serve::cuda
#endif  // FP4SERVE_HAVE_CUDA
