// GPU parity binary: every CUDA kernel, and every decode variant of dev/, against the float64
// reference of parity_reference.h, on fresh random inputs each run (seed printed; --seed
// repeats a run), outputs poisoned with NaN before every launch so that an unwritten element
// fails, NaN never passing. Built by CI, run on the GPU machine:  cuda_parity [--seed N] [--quick]
// (ctest runs it with --quick). Exit status 0 only if every check passed; 77 when no GPU is visible.
#include <cuda_runtime_api.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "backend/cuda/gpu_context.h"
#include "backend/cuda_probe.h"
#include "backend/cuda/kernel_launchers.h"
#include "backend/cuda/linear_cuda.h"
#include "backend/cuda/moe_cuda.h"
#include "formats/number_formats.h"
#include "dev/decode_variants.h"
#include "parity_reference.h"

namespace fp4serve::parity {
namespace {

using cuda::ActKind;
using cuda::DeviceBuffer;
using cuda::GemmInput;
using cuda::GpuContext;
using cuda::Regime;

// Bounds on ||got - ref|| / ||ref||. Inputs to the kernels are exact copies of what the
// reference decodes, products are exact and sums fp32, so the error is dominated by rounding
// the output to bf16 (2^-9 relative per element, ~1.1e-3 RMS).
constexpr double kGemmBound = 3e-3;
// MoE: bf16 intermediates may round the other way than the float64 reference near a tie,
// and such an element can then land on the neighbouring E4M3 code (2^-4 relative).
constexpr double kMoeBound = 2e-2;

int g_passed = 0, g_failed = 0;

void report(const std::string& name, const Comparison& c, double bound) {
  const bool ok = c.passed(bound);
  (ok ? g_passed : g_failed)++;
  std::printf("%s  %-58s rel_l2 %.2e  worst element %.2f of allowed  non-finite %lld  (bound %.0e)\n",
              ok ? "PASS" : "FAIL", name.c_str(), c.rel_l2, c.worst, static_cast<long long>(c.non_finite), bound);
}

void report_exact(const std::string& name, int64_t mismatches, int64_t total) {
  const bool ok = mismatches == 0;
  (ok ? g_passed : g_failed)++;
  std::printf("%s  %-58s %lld of %lld values differ\n", ok ? "PASS" : "FAIL", name.c_str(),
              static_cast<long long>(mismatches), static_cast<long long>(total));
}

std::vector<float> download_bf16(const DeviceBuffer& y, int64_t count) {
  std::vector<uint16_t> bits(static_cast<size_t>(count));
  y.download(bits.data(), bits.size() * 2);
  std::vector<float> out(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) out[i] = decode_bf16(bits[i]);
  return out;
}

void poison(DeviceBuffer& b) { cuda::check_cuda(cudaMemset(b.data(), 0xFF, b.bytes()), "poisoning an output"); }

struct DenseCase {
  WeightEncoding encoding;
  bool bf16_act;
  int64_t n, k;
  ScaleRange scales;
  const char* note;
};

void run_dense(GpuContext& ctx, const DenseCase& c, const std::vector<int64_t>& ms, Rng& rng) {
  const LinearWeight w = random_weight(c.encoding, c.n, c.k, rng, c.scales);
  const cuda::DeviceLinear dw = cuda::DeviceLinear::upload(w);
  const int64_t m_max = *std::max_element(ms.begin(), ms.end());
  const std::vector<uint16_t> x = random_bf16(m_max * c.k, 1.0f, rng);
  DeviceBuffer x_dev(x.size() * 2);
  x_dev.upload(x.data(), x.size() * 2);
  const ActKind act = cuda::activation_kind(dw.kind(), c.bf16_act);
  const std::string label = fmt::format("{} {}x{}{} {}", encoding_name(c.encoding), c.n, c.k,
                                        act == ActKind::kBF16 ? " bf16-act" : "", c.note);

  // Activation quantization on the device must match the formats quantizer bit for bit.
  Fp8Activations ref_act;
  DeviceBuffer codes(static_cast<size_t>(m_max * c.k)), scales(static_cast<size_t>(m_max * (c.k / 128)) * 4);
  if (act == ActKind::kFP8) {
    ref_act = quantize_reference(x, m_max, c.k);
    poison(codes);
    poison(scales);
    cuda::quantize_activations(ctx, x_dev.data(), c.k, m_max, c.k, codes.data(), scales.as<float>());
    cuda::check_cuda(cudaStreamSynchronize(ctx.stream()), "activation quantization");
    std::vector<uint8_t> got_codes(ref_act.codes.size());
    std::vector<float> got_scales(ref_act.scales.size());
    codes.download(got_codes.data(), got_codes.size());
    scales.download(got_scales.data(), got_scales.size() * 4);
    int64_t bad = 0;
    for (size_t i = 0; i < got_codes.size(); ++i) bad += got_codes[i] != ref_act.codes[i];
    for (size_t i = 0; i < got_scales.size(); ++i) bad += got_scales[i] != ref_act.scales[i];
    report_exact(fmt::format("act-quant fp8 {}x{}", m_max, c.k), bad,
                 static_cast<int64_t>(got_codes.size() + got_scales.size()));
  }
  const std::vector<double> xd = act == ActKind::kFP8 ? decode_fp8_activations(ref_act, m_max, c.k) : decode_bf16_values(x);
  const std::vector<double> ref_all = reference_gemm(w, xd, m_max);
  // FP8 block-128 prefill of the shapes the wgmma kernel takes runs on FP8 wgmma, whose
  // tensor-core accumulation keeps about 14 bits (the DeepSeek-V3 technical report,
  // arXiv:2412.19437, "Increasing Accumulation Precision"): within a k32 wgmma the products are
  // aligned to the largest before they are added, and the running partial is cut again at each
  // of the four chained wgmmas of a promotion. Each output may therefore also carry 8 x 2^-13 of
  // the magnitude of its products: 2^-10 sum |x w| (float64). Measured: single elements 3-6%
  // past the fp32 bound with no allowance, and one of 8.6 million at 1.00x with 2^-11
  // (docs/kernels/tiled.md). The other kernels sum exact products in fp32.
  std::vector<double> fp8_wgmma_slack;
  cuda::DenseGemmArgs probe;
  probe.weight = dw.kind();
  probe.act = act;
  probe.w = dw.weight_data();
  probe.w_scale = dw.scale_data();
  probe.global_scale = dw.global_scale();
  probe.n = c.n;
  probe.k = c.k;
  probe.x = act == ActKind::kFP8 ? codes.data() : x_dev.data();
  probe.x_scale = act == ActKind::kFP8 ? scales.as<float>() : nullptr;
  probe.x_stride = c.k;
  probe.m = m_max;
  probe.y_stride = c.n;
  // The FP8 and 4-bit decode kernels on wgmma (skinny_wgmma.cu) accumulate in the tensor cores
  // too (FP8: two chained k32 wgmmas per fp32 partial, half the prefill's chain; MXFP4/NVFP4:
  // one): their outputs, and those of the wgmma variants of bench/cuda/dev/, get the same
  // allowance. decode_probe has M = 1; which M a decode kernel takes is asked again per M below.
  cuda::DenseGemmArgs decode_probe = probe;
  decode_probe.m = 1;
  const bool prefill_on_wgmma = cuda::wgmma_dense_supported(probe);
  if ((c.encoding == WeightEncoding::kFP8Block && prefill_on_wgmma) || cuda::wgmma_decode_supported(decode_probe)) {
    fp8_wgmma_slack = reference_gemm(w, xd, m_max, /*magnitudes=*/true);
    for (double& v : fp8_wgmma_slack) v = std::ldexp(v, -10);
  }

  DeviceBuffer y(static_cast<size_t>(m_max * c.n) * 2);
  auto check_output = [&](const std::string& name, int64_t m, bool on_wgmma) {
    const std::vector<float> got = download_bf16(y, m * c.n);
    const std::span<const double> ref(ref_all.data(), static_cast<size_t>(m * c.n));
    std::span<const double> slack;
    if (on_wgmma && !fp8_wgmma_slack.empty()) {
      slack = std::span<const double>(fp8_wgmma_slack.data(), static_cast<size_t>(m * c.n));
    }
    report(name, compare(got, ref, kGemmBound, slack), kGemmBound);
  };
  for (const int64_t m : ms) {
    GemmInput in;
    in.act = act;
    in.m = m;
    in.x = probe.x;
    in.x_scale = probe.x_scale;
    for (const Regime regime : {Regime::kDecode, Regime::kPrefill}) {
      if (regime == Regime::kDecode && m > 16) continue;
      decode_probe.m = m;
      const bool decode_on_wgmma = regime == Regime::kDecode && cuda::wgmma_decode_chosen(decode_probe);
      poison(y);
      cuda::gemm(ctx, dw, in, y.data(), 0, regime);
      cuda::check_cuda(cudaStreamSynchronize(ctx.stream()), label);
      const char* regime_name =
          regime == Regime::kPrefill ? "prefill" : (decode_on_wgmma ? "decode-wgmma" : "decode");
      check_output(fmt::format("{} M={} {}", label, m, regime_name), m,
                   regime == Regime::kPrefill ? prefill_on_wgmma : decode_on_wgmma);
    }
    if (m > 16) continue;
    cuda::DenseGemmArgs args = probe;
    args.m = m;
    args.y = y.data();
    for (const bench::DecodeVariant* variant : bench::decode_variants()) {
      if (!variant->takes(args)) continue;
      poison(y);
      const cuda::SkinnyPlan plan = variant->plan(args, ctx.num_sms());
      const cuda::Scratch scratch = ctx.scratch(plan.partial_floats, plan.counters);
      const std::string name = fmt::format("{} M={} {}", label, m, variant->name);
      cuda::check_cuda(variant->launch(args, plan, scratch, ctx.stream()), name);
      cuda::check_cuda(cudaStreamSynchronize(ctx.stream()), name);
      check_output(name, m, variant->tensor_core_accumulation);
    }
  }
}

void run_moe(GpuContext& ctx, WeightEncoding encoding, int experts, int64_t hidden, int64_t inter, int top_k,
             const std::vector<int64_t>& token_counts, Rng& rng) {
  std::vector<LinearWeight> w1, w3, w2;
  for (int e = 0; e < experts; ++e) {
    w1.push_back(random_weight(encoding, inter, hidden, rng, {}, fmt::format("experts.{}.w1", e)));
    w3.push_back(random_weight(encoding, inter, hidden, rng, {}, fmt::format("experts.{}.w3", e)));
    w2.push_back(random_weight(encoding, hidden, inter, rng, {}, fmt::format("experts.{}.w2", e)));
  }
  const cuda::DeviceExperts dex = cuda::DeviceExperts::upload(w1, w3, w2);
  for (const int64_t tokens : token_counts) {
    const std::vector<uint16_t> x = random_bf16(tokens * hidden, 1.0f, rng);
    const Fp8Activations xa = quantize_reference(x, tokens, hidden);
    std::vector<int> ids(static_cast<size_t>(tokens * top_k));
    std::vector<float> weights(ids.size());
    std::uniform_real_distribution<float> wdist(0.1f, 1.5f);
    for (int64_t t = 0; t < tokens; ++t) {
      std::vector<int> perm(experts);
      for (int e = 0; e < experts; ++e) perm[e] = e;
      std::shuffle(perm.begin(), perm.end(), rng);
      for (int j = 0; j < top_k; ++j) {
        ids[t * top_k + j] = perm[j];
        weights[t * top_k + j] = wdist(rng);
      }
    }
    // A clamp limit at the median |gate| of the first token's first expert, so that the
    // clamps fire on real values.
    const std::vector<double> x0 = decode_fp8_activations(xa, 1, hidden);
    std::vector<double> g0 = reference_gemm(w1[ids[0]], x0, 1);
    for (double& v : g0) v = std::fabs(v);
    std::nth_element(g0.begin(), g0.begin() + g0.size() / 2, g0.end());
    const float limit = static_cast<float>(g0[g0.size() / 2]);
    const std::vector<double> ref =
        reference_moe(w1, w3, w2, xa, tokens, hidden, ids, weights, top_k, limit);

    DeviceBuffer codes(xa.codes.size()), scales(xa.scales.size() * 4), ids_dev(ids.size() * 4),
        w_dev(weights.size() * 4), y(static_cast<size_t>(tokens * hidden) * 4);
    codes.upload(xa.codes.data(), xa.codes.size());
    scales.upload(xa.scales.data(), xa.scales.size() * 4);
    ids_dev.upload(ids.data(), ids.size() * 4);
    w_dev.upload(weights.data(), weights.size() * 4);
    for (const Regime regime : {Regime::kDecode, Regime::kPrefill}) {
      GemmInput in;
      in.act = ActKind::kFP8;
      in.x = codes.data();
      in.x_scale = scales.as<float>();
      in.m = tokens;
      cuda::MoeRouting routing{ids_dev.as<int>(), w_dev.as<float>(), tokens, top_k};
      poison(y);
      cuda::moe_experts(ctx, dex, in, routing, limit, y.as<float>(), regime);
      cuda::check_cuda(cudaStreamSynchronize(ctx.stream()), "MoE");
      std::vector<float> got(static_cast<size_t>(tokens * hidden));
      y.download(got.data(), got.size() * 4);
      report(fmt::format("moe {} E={} D={} I={} top{} T={} {}", encoding_name(encoding), experts, hidden, inter, top_k,
                         tokens, regime == Regime::kDecode ? "decode" : "prefill"),
             compare(got, ref, kMoeBound), kMoeBound);
    }
  }
}

int run(uint64_t seed, bool quick) {
  std::printf("cuda_parity: seed %llu\n", static_cast<unsigned long long>(seed));
  Rng rng(seed);
  cudaDeviceProp prop{};
  cuda::check_cuda(cudaGetDeviceProperties(&prop, 0), "device query");
  std::printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  GpuContext ctx;
  // <= 8 and 9-16 tokens: the decode kernels with one and two token tiles; above: the prefill
  // kernels (N % 128 == 0: the wgmma kernels; 4-bit weights from 128 tokens through BF16 copies).
  const std::vector<int64_t> ms =
      quick ? std::vector<int64_t>{1, 4, 9, 40, 160} : std::vector<int64_t>{1, 2, 3, 4, 5, 8, 9, 16, 17, 100, 160, 256};
  const ScaleRange wide{100, 150};
  const std::vector<DenseCase> cases = {
      {WeightEncoding::kBF16, false, 272, 1024, {}, ""},
      {WeightEncoding::kBF16, false, 256, 4096, {}, "split-K"},
      {WeightEncoding::kFP8Block, false, 272, 1024, {}, ""},
      {WeightEncoding::kFP8Block, false, 256, 4096, {}, "split-K"},
      {WeightEncoding::kFP8Block, false, 1024, 384, {}, ""},
      {WeightEncoding::kMXFP4, false, 272, 1024, {}, ""},
      {WeightEncoding::kMXFP4, false, 256, 4096, {}, "split-K"},
      {WeightEncoding::kMXFP4, false, 1024, 384, wide, "wide scales"},
      {WeightEncoding::kNVFP4, false, 272, 1024, {}, ""},
      {WeightEncoding::kNVFP4, false, 256, 4096, {}, "split-K"},
      {WeightEncoding::kNVFP4, false, 1024, 384, {}, ""},
      {WeightEncoding::kNVFP4, true, 272, 1024, {}, ""},
      {WeightEncoding::kNVFP4, true, 256, 4096, {}, "split-K"},
      // 132 x 256 rows of W: from 129 tokens the wgmma kernels take 256-row tiles on 132 SMs.
      {WeightEncoding::kFP8Block, false, 33792, 256, {}, "wide tiles"},
      {WeightEncoding::kNVFP4, false, 33792, 256, {}, "wide tiles"},
  };
  for (const DenseCase& c : cases) run_dense(ctx, c, ms, rng);
  // Decode with one token tile (1-8 tokens) and two (16), then the prefill kernels.
  const std::vector<int64_t> tokens = quick ? std::vector<int64_t>{1, 5, 12} : std::vector<int64_t>{1, 2, 5, 8, 16, 40};
  for (const WeightEncoding e : {WeightEncoding::kMXFP4, WeightEncoding::kNVFP4, WeightEncoding::kFP8Block}) {
    run_moe(ctx, e, 8, 512, 256, 3, tokens, rng);
  }
  std::printf("cuda_parity: %d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}

}  // namespace
}  // namespace fp4serve::parity

int main(int argc, char** argv) {
  CLI::App app{"GPU parity of the fp4serve CUDA kernels against float64 references"};
  uint64_t seed = std::random_device{}() | (static_cast<uint64_t>(std::random_device{}()) << 32);
  bool quick = false;
  app.add_option("--seed", seed, "random seed (default: fresh each run)");
  app.add_flag("--quick", quick, "fewer shapes and token counts");
  CLI11_PARSE(app, argc, argv);
  if (fp4serve::cuda_device_count() == 0) {
    std::printf("cuda_parity: no CUDA device visible: skipped\n");
    return 77;  // ctest's SKIP_RETURN_CODE (bench/CMakeLists.txt)
  }
  try {
    return fp4serve::parity::run(seed, quick);
  } catch (const fp4serve::Error& e) {
    std::fprintf(stderr, "cuda_parity: %s\n", e.what());
    return 2;
  }
}
