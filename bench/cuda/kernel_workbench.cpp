#include "kernel_workbench.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <set>

#include "base/error.h"
#include "cublaslt_baseline.h"
#include "dev/decode_variants.h"
#include "backend/cuda/gpu_context.h"
#include "backend/cuda/linear_cuda.h"
#include "backend/cuda/moe_cuda.h"
#include "workbench_kernels.h"

namespace fp4serve::cuda {
namespace {

constexpr double kRotationBytes = 320e6;  // > 6x the 50-60 MB L2 of H100/H200

struct Matrix {
  const char* name;
  int64_t n, k;
  std::vector<WeightKind> kinds;
};

std::vector<Matrix> model_matrices(const std::string& model) {
  const WeightKind f8 = WeightKind::kFP8Block, mx = WeightKind::kMXFP4, nv = WeightKind::kNVFP4,
                   bf = WeightKind::kBF16;
  if (model == "flash") {
    return {{"wq_a", 1024, 4096, {f8}},        {"wq_b", 32768, 1024, {f8}},       {"wkv", 512, 4096, {f8}},
            {"wo_a (1 group)", 1024, 4096, {f8, bf}}, {"wo_b", 4096, 8192, {f8}},  {"shared w1+w3", 4096, 4096, {f8}},
            {"shared w2", 4096, 2048, {f8}},   {"expert w1+w3", 4096, 4096, {mx, nv}}, {"expert w2", 4096, 2048, {mx, nv}},
            {"lm_head", 129280, 4096, {bf}}};
  }
  if (model == "pro") {
    return {{"wq_a", 1536, 7168, {f8}},        {"wq_b", 65536, 1536, {f8}},       {"wkv", 512, 7168, {f8}},
            {"wo_a (1 group)", 1024, 4096, {f8, bf}}, {"wo_b", 7168, 16384, {f8}}, {"shared w1+w3", 6144, 7168, {f8}},
            {"shared w2", 7168, 3072, {f8}},   {"expert w1+w3", 6144, 7168, {mx, nv}}, {"expert w2", 7168, 3072, {mx, nv}},
            {"lm_head", 129280, 7168, {bf}}};
  }
  fail("kernel workbench: unknown model '{}' (flash or pro)", model);
}

const char* kind_name(WeightKind k) {
  switch (k) {
    case WeightKind::kBF16: return "bf16";
    case WeightKind::kFP8Block: return "fp8-block";
    case WeightKind::kMXFP4: return "mxfp4";
    case WeightKind::kNVFP4: return "nvfp4";
  }
  return "?";
}

int64_t weight_bytes(WeightKind kind, int64_t n, int64_t k) {
  switch (kind) {
    case WeightKind::kBF16: return 2 * n * k;
    case WeightKind::kFP8Block: return n * k + (n + 127) / 128 * (k / 128) * 4;
    case WeightKind::kMXFP4: return n * k / 2 + n * (k / 32);
    case WeightKind::kNVFP4: return n * k / 2 + n * (k / 16);
  }
  return 0;
}

DeviceLinear random_linear(WeightKind kind, int64_t n, int64_t k, uint64_t seed, cudaStream_t stream) {
  const bool fp4 = kind == WeightKind::kMXFP4 || kind == WeightKind::kNVFP4;
  const int64_t wbytes = kind == WeightKind::kBF16 ? 2 * n * k : (fp4 ? n * k / 2 : n * k);
  DeviceBuffer w(static_cast<size_t>(wbytes));
  const FillKind wfill = kind == WeightKind::kBF16 ? FillKind::kBF16
                         : kind == WeightKind::kFP8Block ? FillKind::kE4M3Finite : FillKind::kAnyByte;
  check_cuda(fill_random(w.data(), wbytes, seed, wfill, stream), "random weights");
  DeviceBuffer s;
  if (kind != WeightKind::kBF16) {
    const int64_t sbytes = weight_bytes(kind, n, k) - wbytes;
    s = DeviceBuffer(static_cast<size_t>(sbytes));
    const FillKind sfill = kind == WeightKind::kFP8Block ? FillKind::kPow2Float
                           : kind == WeightKind::kMXFP4 ? FillKind::kE8M0Scale : FillKind::kE4M3Scale;
    check_cuda(fill_random(s.data(), sbytes, seed + 1, sfill, stream), "random scales");
  }
  return DeviceLinear::adopt(kind, n, k, std::move(w), std::move(s), 1.0f / 256.0f, "bench");
}

int rotation_copies(double bytes) {
  return static_cast<int>(std::clamp(std::ceil(kRotationBytes / bytes), 1.0, 128.0));
}

// Median time of one call, from CUDA-graph replays of call(0), call(1), ... (enough calls
// for each replay to last a few milliseconds).
double time_call(cudaStream_t stream, int copies, const std::function<void(int)>& call) {
  call(0);
  check_cuda(cudaStreamSynchronize(stream), "warm-up");
  cudaEvent_t start, stop;
  check_cuda(cudaEventCreate(&start), "event");
  check_cuda(cudaEventCreate(&stop), "event");
  check_cuda(cudaEventRecord(start, stream), "event");
  call(1 % copies);
  check_cuda(cudaEventRecord(stop, stream), "event");
  check_cuda(cudaEventSynchronize(stop), "event");
  float first_ms = 0;
  check_cuda(cudaEventElapsedTime(&first_ms, start, stop), "event");
  const int launches = static_cast<int>(std::clamp(std::ceil(3.0 / std::max(first_ms, 1e-3f)), 1.0, 400.0));
  const int calls = std::max(launches, std::min(copies, 400));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  check_cuda(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed), "graph capture");
  for (int i = 0; i < calls; ++i) call(i % copies);
  check_cuda(cudaStreamEndCapture(stream, &graph), "graph capture");
  check_cuda(cudaGraphInstantiate(&exec, graph, 0), "graph instantiate");
  check_cuda(cudaGraphLaunch(exec, stream), "graph launch");
  std::vector<float> times;
  for (int r = 0; r < 7; ++r) {
    check_cuda(cudaEventRecord(start, stream), "event");
    check_cuda(cudaGraphLaunch(exec, stream), "graph launch");
    check_cuda(cudaEventRecord(stop, stream), "event");
    check_cuda(cudaEventSynchronize(stop), "graph replay");
    float ms = 0;
    check_cuda(cudaEventElapsedTime(&ms, start, stop), "event");
    times.push_back(ms);
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::nth_element(times.begin(), times.begin() + 3, times.end());
  return times[3] * 1e3 / calls;
}

// Device-to-device copy of 1 GiB, bytes read + written per second: the better of a copy
// kernel (4 CTAs per SM) and cudaMemcpyAsync, each the median of 7 timed copies.
double copy_bandwidth(cudaStream_t stream, int sms, double* kernel_gbps, double* memcpy_gbps) {
  const size_t bytes = size_t{1} << 30;
  DeviceBuffer a(bytes), b(bytes);
  check_cuda(fill_random(a.data(), static_cast<int64_t>(bytes), 7, FillKind::kAnyByte, stream), "fill");
  cudaEvent_t start, stop;
  check_cuda(cudaEventCreate(&start), "event");
  check_cuda(cudaEventCreate(&stop), "event");
  auto median_us = [&](const std::function<void()>& copy) {
    copy();
    std::vector<float> times;
    for (int r = 0; r < 7; ++r) {
      check_cuda(cudaEventRecord(start, stream), "event");
      copy();
      check_cuda(cudaEventRecord(stop, stream), "event");
      check_cuda(cudaEventSynchronize(stop), "copy");
      float ms = 0;
      check_cuda(cudaEventElapsedTime(&ms, start, stop), "event");
      times.push_back(ms);
    }
    std::nth_element(times.begin(), times.begin() + 3, times.end());
    return times[3] * 1e3;
  };
  const double k_us = median_us(
      [&] { check_cuda(copy_device(a.data(), b.data(), static_cast<int64_t>(bytes), 4 * sms, stream), "copy kernel"); });
  const double m_us = median_us([&] {
    check_cuda(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, stream), "cudaMemcpyAsync");
  });
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  *kernel_gbps = 2.0 * static_cast<double>(bytes) / (k_us * 1e-6) / 1e9;
  *memcpy_gbps = 2.0 * static_cast<double>(bytes) / (m_us * 1e-6) / 1e9;
  return std::max(*kernel_gbps, *memcpy_gbps);
}

// cuBLASLt at one shape, BF16 and FP8, with its own rotated weight copies.
struct CublasTimes {
  double bf16_us = -1, fp8_us = -1;
};

CublasTimes time_cublas(CublasLtBaseline& lt, int64_t n, int64_t k, int64_t m, const void* x_bf16, const void* x_fp8,
                        void* y, const float* ones, cudaStream_t stream) {
  CublasTimes t;
  for (const bool fp8 : {false, true}) {
    const int64_t bytes = (fp8 ? 1 : 2) * n * k;
    const int copies = rotation_copies(static_cast<double>(bytes));
    std::vector<DeviceBuffer> ws;
    for (int c = 0; c < copies; ++c) {
      ws.emplace_back(static_cast<size_t>(bytes));
      check_cuda(fill_random(ws.back().data(), bytes, 100 + c, fp8 ? FillKind::kE4M3Finite : FillKind::kBF16, stream),
                 "fill");
    }
    std::string why;
    const auto precision = fp8 ? CublasLtBaseline::Precision::kFP8 : CublasLtBaseline::Precision::kBF16;
    if (!lt.matmul(precision, m, n, k, fp8 ? x_fp8 : x_bf16, ws[0].data(), y, ones, ones, stream, &why)) continue;
    const double us = time_call(stream, copies, [&](int i) {
      lt.matmul(precision, m, n, k, fp8 ? x_fp8 : x_bf16, ws[i].data(), y, ones, ones, stream, nullptr);
    });
    (fp8 ? t.fp8_us : t.bf16_us) = us;
  }
  return t;
}

bool variant_selected(const WorkbenchOptions& o, const std::string& name) {
  return std::any_of(o.variants.begin(), o.variants.end(),
                     [&](const std::string& v) { return v == "all" || v == name; });
}

// Times every selected decode variant of dev/ that takes this shape, beside `product` (the
// product kernel's row for the same weights and activations).
void time_variants(GpuContext& ctx, const WorkbenchOptions& o, const std::vector<DeviceLinear>& ws,
                   const GemmInput& in, void* y, const GemmRow& product, int copies, WorkbenchReport& report) {
  if (o.variants.empty()) return;
  auto args_for = [&](const DeviceLinear& w) {
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
    a.x_stride = a.k;
    a.m = in.m;
    a.y = y;
    a.y_stride = a.n;
    return a;
  };
  for (const bench::DecodeVariant* variant : bench::decode_variants()) {
    const DenseGemmArgs first = args_for(ws[0]);
    if (!variant_selected(o, variant->name) || !variant->takes(first)) continue;
    const SkinnyPlan plan = variant->plan(first, ctx.num_sms());
    const Scratch scratch = ctx.scratch(plan.partial_floats, plan.counters);
    GemmRow row = product;
    row.kernel = variant->name;
    row.us = time_call(ctx.stream(), copies, [&](int i) {
      check_cuda(variant->launch(args_for(ws[i]), plan, scratch, ctx.stream()), variant->name);
    });
    report.gemm.push_back(row);
  }
}

void run_gemms(GpuContext& ctx, CublasLtBaseline* lt, const WorkbenchOptions& o, const std::string& model,
               WorkbenchReport& report, const std::function<void(const std::string&)>& progress) {
  const cudaStream_t stream = ctx.stream();
  const int64_t m_max = *std::max_element(o.ms.begin(), o.ms.end());
  DeviceBuffer ones(4);
  const float one = 1.0f;
  ones.upload(&one, 4);
  for (const Matrix& mat : model_matrices(model)) {
    if (!o.matrix_filter.empty() && std::string(mat.name).find(o.matrix_filter) == std::string::npos) continue;
    DeviceBuffer x(static_cast<size_t>(m_max * mat.k) * 2), codes(static_cast<size_t>(m_max * mat.k)),
        scales(static_cast<size_t>(m_max * (mat.k / 128)) * 4), y(static_cast<size_t>(m_max * mat.n) * 2);
    check_cuda(fill_random(x.data(), m_max * mat.k * 2, 3, FillKind::kBF16, stream), "fill");
    quantize_activations(ctx, x.data(), mat.k, m_max, mat.k, codes.data(), scales.as<float>());
    std::map<int64_t, CublasTimes> cublas;
    for (const WeightKind kind : mat.kinds) {
      const double bytes = static_cast<double>(weight_bytes(kind, mat.n, mat.k));
      const int copies = rotation_copies(bytes);
      std::vector<DeviceLinear> ws;
      for (int c = 0; c < copies; ++c) ws.push_back(random_linear(kind, mat.n, mat.k, 11 + 2 * c, stream));
      for (const int64_t m : o.ms) {
        progress(fmt::format("{} {} {} M={}", model, mat.name, kind_name(kind), m));
        GemmInput in;
        in.act = activation_kind(kind);
        in.m = m;
        in.x = in.act == ActKind::kFP8 ? codes.data() : x.data();
        in.x_scale = in.act == ActKind::kFP8 ? scales.as<float>() : nullptr;
        GemmRow row;
        row.model = model;
        row.matrix = mat.name;
        row.encoding = kind_name(kind);
        row.n = mat.n;
        row.k = mat.k;
        row.m = m;
        row.weight_bytes = bytes;
        row.us = time_call(stream, copies, [&](int i) { gemm(ctx, ws[i], in, y.data()); });
        if (lt) {
          if (!cublas.count(m)) cublas[m] = time_cublas(*lt, mat.n, mat.k, m, x.data(), codes.data(), y.data(),
                                                         ones.as<float>(), stream);
          row.cublas_bf16_us = cublas[m].bf16_us;
          row.cublas_fp8_us = cublas[m].fp8_us;
        }
        report.gemm.push_back(row);
        time_variants(ctx, o, ws, in, y.data(), row, copies, report);
      }
    }
  }
}

void run_moe(GpuContext& ctx, const WorkbenchOptions& o, WorkbenchReport& report,
             const std::function<void(const std::string&)>& progress) {
  // V4-Flash routed experts: 256 x (w1, w3 [2048, 4096], w2 [4096, 2048]), top-6.
  const int experts = 256, top_k = 6;
  const int64_t hidden = 4096, inter = 2048;
  const cudaStream_t stream = ctx.stream();
  for (const WeightKind kind : {WeightKind::kMXFP4, WeightKind::kNVFP4}) {
    progress(fmt::format("moe flash {}: filling 256 experts", kind_name(kind)));
    std::vector<DeviceLinear> w1, w3, w2;
    for (int e = 0; e < experts; ++e) {
      w1.push_back(random_linear(kind, inter, hidden, 1000 + 3 * e, stream));
      w3.push_back(random_linear(kind, inter, hidden, 1001 + 3 * e, stream));
      w2.push_back(random_linear(kind, hidden, inter, 1002 + 3 * e, stream));
    }
    const DeviceExperts ex = DeviceExperts::assemble(std::move(w1), std::move(w3), std::move(w2));
    std::mt19937 rng(42);
    for (const int64_t tokens : o.moe_tokens) {
      if (tokens <= 0) continue;
      progress(fmt::format("moe flash {} tokens={}", kind_name(kind), tokens));
      // Several routings rotated so that consecutive calls read different experts.
      const int routings = 8;
      std::vector<DeviceBuffer> ids_dev, w_dev;
      double active = 0, bytes = 0;
      for (int r = 0; r < routings; ++r) {
        std::vector<int> ids(static_cast<size_t>(tokens * top_k));
        std::vector<float> weights(ids.size(), 0.25f);
        std::set<int> distinct;
        for (int64_t t = 0; t < tokens; ++t) {
          std::vector<int> perm(experts);
          for (int e = 0; e < experts; ++e) perm[e] = e;
          std::shuffle(perm.begin(), perm.end(), rng);
          for (int j = 0; j < top_k; ++j) {
            ids[t * top_k + j] = perm[j];
            distinct.insert(perm[j]);
          }
        }
        active += static_cast<double>(distinct.size()) / routings;
        for (int e : distinct) bytes += static_cast<double>(ex.expert_bytes(e)) / routings;
        ids_dev.emplace_back(ids.size() * 4);
        ids_dev.back().upload(ids.data(), ids.size() * 4);
        w_dev.emplace_back(weights.size() * 4);
        w_dev.back().upload(weights.data(), weights.size() * 4);
      }
      DeviceBuffer x(static_cast<size_t>(tokens * hidden) * 2), codes(static_cast<size_t>(tokens * hidden)),
          scales(static_cast<size_t>(tokens * hidden / 128) * 4), y(static_cast<size_t>(tokens * hidden) * 4);
      check_cuda(fill_random(x.data(), tokens * hidden * 2, 5, FillKind::kBF16, stream), "fill");
      quantize_activations(ctx, x.data(), hidden, tokens, hidden, codes.data(), scales.as<float>());
      GemmInput in;
      in.act = ActKind::kFP8;
      in.x = codes.data();
      in.x_scale = scales.as<float>();
      in.m = tokens;
      auto routing = [&](int i) { return MoeRouting{ids_dev[i].as<int>(), w_dev[i].as<float>(), tokens, top_k}; };
      MoeRow row;
      row.model = "flash";
      row.encoding = kind_name(kind);
      row.tokens = tokens;
      row.active_experts = active;
      row.expert_bytes = bytes;
      row.layer_us = time_call(stream, routings, [&](int i) { moe_experts(ctx, ex, in, routing(i), 10.0f, y.as<float>()); });
      row.route_us = time_call(stream, routings, [&](int i) { route_moe(ctx, ex, routing(i)); });
      const MoeBatch batch = route_moe(ctx, ex, routing(0));
      const void* rows = moe_projections(ctx, ex, batch, in, 10.0f);
      row.combine_us = time_call(stream, 1, [&](int) { combine_moe(ctx, batch, rows, hidden, y.as<float>()); });
      report.moe.push_back(row);
    }
  }
}

}  // namespace

WorkbenchReport run_kernel_workbench(const WorkbenchOptions& o, const std::function<void(const std::string&)>& progress) {
  WorkbenchReport report;
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, 0), "device query");
  report.device = prop.name;
  report.sms = prop.multiProcessorCount;
  cudaStream_t stream;
  check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  {
    GpuContext ctx(stream);
    progress("copy bandwidth");
    report.copy_gbps = copy_bandwidth(stream, report.sms, &report.copy_kernel_gbps, &report.copy_memcpy_gbps);
    std::unique_ptr<CublasLtBaseline> lt;
    if (o.cublas) {
      lt = CublasLtBaseline::open(&report.cublas_note);
      if (lt) {
        progress("cuBLASLt dense 4096 x 7168 x 7168");
        const int64_t m = 4096, n = 7168, k = 7168;
        DeviceBuffer x(static_cast<size_t>(m * k) * 2), x8(static_cast<size_t>(m * k)), y(static_cast<size_t>(m * n) * 2),
            ones(4);
        const float one = 1.0f;
        ones.upload(&one, 4);
        check_cuda(fill_random(x.data(), m * k * 2, 9, FillKind::kBF16, stream), "fill");
        check_cuda(fill_random(x8.data(), m * k, 9, FillKind::kE4M3Finite, stream), "fill");
        const CublasTimes t = time_cublas(*lt, n, k, m, x.data(), x8.data(), y.data(), ones.as<float>(), stream);
        const double flop = 2.0 * m * n * k;
        report.cublas_bf16_tflops = t.bf16_us > 0 ? flop / (t.bf16_us * 1e-6) / 1e12 : 0;
        report.cublas_fp8_tflops = t.fp8_us > 0 ? flop / (t.fp8_us * 1e-6) / 1e12 : 0;
      }
    }
    for (const std::string& model : o.models) run_gemms(ctx, lt.get(), o, model, report, progress);
    if (std::any_of(o.moe_tokens.begin(), o.moe_tokens.end(), [](int64_t t) { return t > 0; })) {
      run_moe(ctx, o, report, progress);
    }
    check_cuda(cudaStreamSynchronize(stream), "workbench");
  }
  cudaStreamDestroy(stream);
  return report;
}

nlohmann::json workbench_json(const WorkbenchReport& r) {
  nlohmann::json j;
  j["device"] = r.device;
  j["sms"] = r.sms;
  j["copy_gbps"] = r.copy_gbps;
  j["copy_kernel_gbps"] = r.copy_kernel_gbps;
  j["copy_memcpy_gbps"] = r.copy_memcpy_gbps;
  j["cublas_dense_4096x7168x7168"] = {{"bf16_tflops", r.cublas_bf16_tflops}, {"fp8_tflops", r.cublas_fp8_tflops}};
  if (!r.cublas_note.empty()) j["cublas_note"] = r.cublas_note;
  for (const GemmRow& g : r.gemm) {
    j["gemm"].push_back({{"model", g.model}, {"matrix", g.matrix}, {"encoding", g.encoding}, {"kernel", g.kernel},
                         {"n", g.n}, {"k", g.k},
                         {"m", g.m}, {"weight_bytes", g.weight_bytes}, {"us", g.us},
                         {"cublas_bf16_us", g.cublas_bf16_us}, {"cublas_fp8_us", g.cublas_fp8_us}});
  }
  for (const MoeRow& m : r.moe) {
    j["moe"].push_back({{"model", m.model}, {"encoding", m.encoding}, {"tokens", m.tokens},
                        {"active_experts", m.active_experts}, {"expert_bytes", m.expert_bytes},
                        {"layer_us", m.layer_us}, {"route_us", m.route_us}, {"combine_us", m.combine_us}});
  }
  return j;
}

std::string workbench_markdown(const WorkbenchReport& r) {
  std::string out = fmt::format(
      "Device: {} ({} SMs). Copy bandwidth (read + write, 1 GiB): {:.0f} GB/s (copy kernel {:.0f}, cudaMemcpy "
      "{:.0f}). cuBLASLt dense 4096x7168x7168: BF16 {:.0f} TFLOP/s, FP8 {:.0f} TFLOP/s.\n\n",
      r.device, r.sms, r.copy_gbps, r.copy_kernel_gbps, r.copy_memcpy_gbps, r.cublas_bf16_tflops,
      r.cublas_fp8_tflops);
  out +=
      "| model | matrix | enc | N x K | MB | M | us | GB/s | % copy | TFLOP/s | cuBLAS BF16 us | cuBLAS FP8 us | "
      "x vs BF16 (need) | % cuBLAS FP8 |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const GemmRow& g : r.gemm) {
    const double gbps = g.weight_bytes / (g.us * 1e-6) / 1e9;
    const double tflops = 2.0 * g.m * g.n * g.k / (g.us * 1e-6) / 1e12;
    const double need = 0.8 * (2.0 * g.n * g.k) / g.weight_bytes;
    out += fmt::format("| {} | {} | {} | {}x{} | {:.1f} | {} | {:.1f} | {:.0f} | {:.0f}% | {:.1f} | {} | {} | {} | {} |\n",
                       g.model, g.matrix, g.kernel == "product" ? g.encoding : g.encoding + " " + g.kernel, g.n,
                       g.k, g.weight_bytes / 1e6, g.m, g.us, gbps,
                       100.0 * gbps / r.copy_gbps, tflops,
                       g.cublas_bf16_us > 0 ? fmt::format("{:.1f}", g.cublas_bf16_us) : "n/a",
                       g.cublas_fp8_us > 0 ? fmt::format("{:.1f}", g.cublas_fp8_us) : "n/a",
                       g.cublas_bf16_us > 0 ? fmt::format("{:.2f} ({:.2f})", g.cublas_bf16_us / g.us, need) : "n/a",
                       g.cublas_fp8_us > 0 ? fmt::format("{:.0f}%", 100.0 * g.cublas_fp8_us / g.us) : "n/a");
  }
  if (!r.moe.empty()) {
    out +=
        "\n| MoE layer | enc | tokens | active experts | expert MB | layer us | GB/s | % copy | route us | combine us "
        "|\n|---|---|---|---|---|---|---|---|---|---|\n";
    for (const MoeRow& m : r.moe) {
      const double gbps = m.expert_bytes / (m.layer_us * 1e-6) / 1e9;
      out += fmt::format("| {} top-6/256 | {} | {} | {:.1f} | {:.1f} | {:.1f} | {:.0f} | {:.0f}% | {:.1f} | {:.1f} |\n",
                         m.model, m.encoding, m.tokens, m.active_experts, m.expert_bytes / 1e6, m.layer_us, gbps,
                         100.0 * gbps / r.copy_gbps, m.route_us, m.combine_us);
    }
  }
  return out;
}

}  // namespace fp4serve::cuda
