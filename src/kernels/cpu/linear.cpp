#include "kernels/cpu/linear.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "base/error.h"
#include "kernels/cpu/activation_quant.h"
#include "kernels/cpu/numeric_formats.h"
#include "kernels/cpu/row_kernels.h"

namespace fp4serve::cpu {
namespace {

constexpr int64_t kChunk = 256;  // weights decoded at a time: a multiple of every block size

const char* encoding_label(WeightEncoding e) {
  switch (e) {
    case WeightEncoding::kBF16: return "BF16";
    case WeightEncoding::kF16: return "F16";
    case WeightEncoding::kF32: return "F32";
    case WeightEncoding::kFP8Block: return "FP8 block-128";
    case WeightEncoding::kMXFP4: return "MXFP4";
    case WeightEncoding::kNVFP4: return "NVFP4";
  }
  return "?";
}

void check_weight(const LinearWeight& w) {
  const int64_t N = w.out_features, K = w.in_features;
  const auto& wt = w.weight;
  // Compared without building a vector: this runs for every call of every decode step.
  auto expect_shape = [&](const TensorView& t, std::initializer_list<int64_t> shape, const char* what) {
    FP4SERVE_CHECK(t.shape.size() == shape.size() && std::equal(shape.begin(), shape.end(), t.shape.begin()),
                   "linear {}: {} has shape {}, expected {} for {} [{}, {}]", w.name, what, shape_string(t.shape),
                   shape_string(std::vector<int64_t>(shape)), encoding_label(w.encoding), N, K);
  };
  auto expect_dtype = [&](const TensorView& t, std::initializer_list<DType> ok, const char* what) {
    FP4SERVE_CHECK(std::find(ok.begin(), ok.end(), t.dtype) != ok.end(), "linear {}: {} has dtype {}, unexpected for {}",
                   w.name, what, dtype_name(t.dtype), encoding_label(w.encoding));
  };
  FP4SERVE_CHECK(N > 0 && K > 0 && wt.data != nullptr, "linear {}: empty weight", w.name);
  switch (w.encoding) {
    case WeightEncoding::kBF16: expect_dtype(wt, {DType::BF16}, "weight"); expect_shape(wt, {N, K}, "weight"); break;
    case WeightEncoding::kF16: expect_dtype(wt, {DType::F16}, "weight"); expect_shape(wt, {N, K}, "weight"); break;
    case WeightEncoding::kF32: expect_dtype(wt, {DType::F32}, "weight"); expect_shape(wt, {N, K}, "weight"); break;
    case WeightEncoding::kFP8Block:
      expect_dtype(wt, {DType::F8_E4M3}, "weight");
      expect_shape(wt, {N, K}, "weight");
      expect_dtype(w.scale, {DType::F8_E8M0, DType::F32}, "scale");
      expect_shape(w.scale, {(N + 127) / 128, (K + 127) / 128}, "scale");
      break;
    case WeightEncoding::kMXFP4:
      FP4SERVE_CHECK(K % 32 == 0, "linear {}: MXFP4 in_features {} is not a multiple of 32", w.name, K);
      expect_dtype(wt, {DType::I8, DType::U8}, "weight");
      expect_shape(wt, {N, K / 2}, "weight");
      expect_dtype(w.scale, {DType::F8_E8M0}, "scale");
      expect_shape(w.scale, {N, K / 32}, "scale");
      break;
    case WeightEncoding::kNVFP4:
      FP4SERVE_CHECK(K % 16 == 0, "linear {}: NVFP4 in_features {} is not a multiple of 16", w.name, K);
      expect_dtype(wt, {DType::U8, DType::I8}, "weight");
      expect_shape(wt, {N, K / 2}, "weight");
      expect_dtype(w.scale, {DType::F8_E4M3}, "scale");
      expect_shape(w.scale, {N, K / 16}, "scale");
      break;
  }
}

struct PreparedJob {
  LinearJob job;
  int64_t row_end = 0;
  int64_t y_stride = 0;
  const float* x = nullptr;
  int64_t x_stride = 0;
  int64_t rows_per_task = 1;
  const uint16_t* x_prepared = nullptr;  // for RowKernels::dot_{fp8,mxfp4}_row_prepared
};

bool all_bf16_values(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if ((float_to_bits(x[i]) & 0xFFFFu) != 0) return false;
  return true;
}

// Decodes weights [k0, k0+len) of row n of a BF16 / F16 weight into `buf`, or points
// into F32 weights directly.
const float* decode_stretch(const RowKernels& kern, const LinearWeight& w, int64_t n, int64_t k0, int64_t len, float* buf) {
  const int64_t K = w.in_features;
  switch (w.encoding) {
    case WeightEncoding::kF32: return w.weight.as<float>() + n * K + k0;
    case WeightEncoding::kBF16: kern.decode_bf16(w.weight.as<uint16_t>() + n * K + k0, len, buf); return buf;
    case WeightEncoding::kF16: kern.decode_f16(w.weight.as<uint16_t>() + n * K + k0, len, buf); return buf;
    default:  // block-scaled encodings take the one-row kernels (run_rows)
      return nullptr;
  }
  return buf;
}

void run_rows(const RowKernels& kern, const PreparedJob& p, int64_t n_begin, int64_t n_end) {
  const LinearWeight& w = *p.job.weight;
  const int64_t K = w.in_features, M = p.job.rows;
  thread_local std::vector<float> acc;
  thread_local std::vector<float> buf(kChunk);
  if (static_cast<int64_t>(acc.size()) < M) acc.resize(static_cast<size_t>(M));
  const float post_scale = w.encoding == WeightEncoding::kNVFP4 ? w.global_scale : 1.0f;
  // Encodings with a one-row kernel use it for every activation row, so a row's result
  // never depends on how many rows share the call (decode = prefill, batch-invariant).
  // Each weight row is re-read per activation row from cache, not from memory.
  const bool one_row_kernel = w.encoding == WeightEncoding::kFP8Block || w.encoding == WeightEncoding::kMXFP4 ||
                              w.encoding == WeightEncoding::kNVFP4 || (w.encoding == WeightEncoding::kBF16 && p.x_prepared);
  if (one_row_kernel) {
    thread_local std::vector<float> scales;
    if (static_cast<int64_t>(scales.size()) < K / 16 + 1) scales.resize(static_cast<size_t>(K / 16 + 1));
    const bool mx = w.encoding == WeightEncoding::kMXFP4;
    for (int64_t n = n_begin; n < n_end; ++n) {
      const uint8_t* fp4_scales = nullptr;
      if (w.encoding == WeightEncoding::kFP8Block) {
        const int64_t kb = (K + 127) / 128, base = (n / 128) * kb;
        for (int64_t b = 0; b < kb; ++b)
          scales[b] = w.scale.dtype == DType::F32 ? w.scale.as<float>()[base + b] : e8m0_to_float(w.scale.as<uint8_t>()[base + b]);
      } else if (w.encoding != WeightEncoding::kBF16) {
        const int64_t block = mx ? 32 : 16;
        fp4_scales = w.scale.as<uint8_t>() + n * (K / block);
        if (!(mx && p.x_prepared))
          for (int64_t b = 0; b < K / block; ++b) scales[b] = mx ? e8m0_to_float(fp4_scales[b]) : e4m3_to_float(fp4_scales[b]);
      }
      for (int64_t m = 0; m < M; ++m) {
        const float* x = p.x + m * p.x_stride;
        const uint16_t* xp = p.x_prepared ? p.x_prepared + m * K : nullptr;
        float v = 0.0f;
        switch (w.encoding) {
          case WeightEncoding::kBF16: v = kern.dot_bf16_row_prepared(w.weight.as<uint16_t>() + n * K, K, xp); break;
          case WeightEncoding::kFP8Block:
            v = xp ? kern.dot_fp8_row_prepared(w.weight.as<uint8_t>() + n * K, K, scales.data(), xp)
                   : kern.dot_fp8_row(w.weight.as<uint8_t>() + n * K, K, scales.data(), x);
            break;
          default:
            v = (mx && xp) ? kern.dot_mxfp4_row_prepared(w.weight.as<uint8_t>() + n * (K / 2), K, fp4_scales, xp)
                           : kern.dot_fp4_row(w.weight.as<uint8_t>() + n * (K / 2), K, scales.data(), mx ? 32 : 16, x);
            break;
        }
        v *= post_scale;
        p.job.y[m * p.y_stride + (n - p.job.row_begin)] = p.job.round_bf16 ? round_bf16(v) : v;
      }
    }
    return;
  }
  for (int64_t n = n_begin; n < n_end; ++n) {
    std::fill(acc.begin(), acc.begin() + M, 0.0f);
    for (int64_t k0 = 0; k0 < K; k0 += kChunk) {
      const int64_t len = std::min(kChunk, K - k0);
      const float* wrow = decode_stretch(kern, w, n, k0, len, buf.data());
      for (int64_t m0 = 0; m0 < M; m0 += kMaxDotRows) {
        const int rows = static_cast<int>(std::min<int64_t>(kMaxDotRows, M - m0));
        const float* xs[kMaxDotRows];
        for (int r = 0; r < rows; ++r) xs[r] = p.x + (m0 + r) * p.x_stride + k0;
        kern.dot(wrow, len, xs, rows, acc.data() + m0);
      }
    }
    float* y = p.job.y + (n - p.job.row_begin);
    for (int64_t m = 0; m < M; ++m) {
      const float v = acc[static_cast<size_t>(m)] * post_scale;
      y[m * p.y_stride] = p.job.round_bf16 ? round_bf16(v) : v;
    }
  }
}

std::atomic<ActivationObserver*> activation_observer{nullptr};

}  // namespace

void set_activation_observer(ActivationObserver* observer) { activation_observer.store(observer); }

void linear(std::span<const LinearJob> jobs, ThreadPool& pool) {
  if (ActivationObserver* observer = activation_observer.load(std::memory_order_relaxed))
    for (const LinearJob& job : jobs)
      if (job.weight && job.x && job.rows > 0)
        observer->observe(*job.weight, job.x, job.rows, job.x_stride > 0 ? job.x_stride : job.weight->in_features);
  thread_local std::vector<PreparedJob> prepared;
  thread_local std::vector<int64_t> task_start;
  thread_local std::vector<float> quantized;
  thread_local std::vector<uint16_t> bf16_inputs;
  prepared.clear();
  const RowKernels& kern = row_kernels(active_isa());
  task_start.clear();

  size_t quant_floats = 0;
  for (const LinearJob& job : jobs) {
    FP4SERVE_CHECK(job.weight != nullptr, "linear: job without a weight");
    const LinearWeight& w = *job.weight;
    check_weight(w);
    const int64_t row_end = job.row_end < 0 ? w.out_features : job.row_end;
    FP4SERVE_CHECK(job.row_begin >= 0 && job.row_begin < row_end && row_end <= w.out_features,
                   "linear {}: output rows [{}, {}) outside [0, {})", w.name, job.row_begin, row_end, w.out_features);
    FP4SERVE_CHECK(job.rows >= 0 && (job.rows == 0 || (job.x && job.y)), "linear {}: missing input or output", w.name);
    if (job.act == ActivationQuant::kFP8Block128) {
      FP4SERVE_CHECK(w.in_features % 128 == 0, "linear {}: FP8 activation quantization needs in_features % 128 == 0, got {}",
                     w.name, w.in_features);
      quant_floats += static_cast<size_t>(job.rows * w.in_features);
    }
  }
  if (quantized.size() < quant_floats) quantized.resize(quant_floats);
  size_t bf16_floats = 0;
  for (const LinearJob& job : jobs) bf16_floats += static_cast<size_t>(job.rows * job.weight->in_features);
  if (bf16_inputs.size() < bf16_floats) bf16_inputs.resize(bf16_floats);
  size_t bf16_offset = 0;

  size_t quant_offset = 0;
  int64_t tasks = 0;
  for (const LinearJob& job : jobs) {
    if (job.rows == 0) continue;
    const LinearWeight& w = *job.weight;
    PreparedJob p;
    p.job = job;
    p.row_end = job.row_end < 0 ? w.out_features : job.row_end;
    p.y_stride = job.y_stride > 0 ? job.y_stride : p.row_end - job.row_begin;
    p.x_stride = job.x_stride > 0 ? job.x_stride : w.in_features;
    p.x = job.x;
    if (job.act == ActivationQuant::kFP8Block128) {
      // Jobs reading the same activations (wq_a and wkv, w1 and w3) share one quantized copy.
      const PreparedJob* twin = nullptr;
      for (const PreparedJob& q : prepared)
        if (q.job.act == job.act && q.job.x == job.x && q.job.rows == job.rows && q.x_stride == w.in_features &&
            q.job.weight->in_features == w.in_features && (job.x_stride == 0 ? w.in_features : job.x_stride) ==
            (q.job.x_stride == 0 ? q.job.weight->in_features : q.job.x_stride))
          twin = &q;
      if (twin != nullptr) {
        p.x = twin->x;
      } else {
        float* q = quantized.data() + quant_offset;
        for (int64_t m = 0; m < job.rows; ++m)
          fp8_quantize_dequantize(job.x + m * p.x_stride, w.in_features, 128, q + m * w.in_features);
        p.x = q;
        quant_offset += static_cast<size_t>(job.rows * w.in_features);
      }
      p.x_stride = w.in_features;
    }
    const bool fp8 = w.encoding == WeightEncoding::kFP8Block && w.in_features % 128 == 0 && kern.prepare_fp8_x;
    const bool mxfp4 = w.encoding == WeightEncoding::kMXFP4 && kern.prepare_fp4_x;
    const bool bf16 = w.encoding == WeightEncoding::kBF16 && kern.prepare_bf16_x;
    bool bf16_values = fp8 || mxfp4 || bf16;
    for (int64_t m = 0; m < job.rows && bf16_values; ++m) bf16_values = all_bf16_values(p.x + m * p.x_stride, w.in_features);
    if (bf16_values) {
      uint16_t* xp = bf16_inputs.data() + bf16_offset;
      for (int64_t m = 0; m < job.rows; ++m)
        (fp8 ? kern.prepare_fp8_x : mxfp4 ? kern.prepare_fp4_x : kern.prepare_bf16_x)(p.x + m * p.x_stride, w.in_features,
                                                                                      xp + m * w.in_features);
      p.x_prepared = xp;
      bf16_offset += static_cast<size_t>(job.rows * w.in_features);
    }
    // About 128K weights a task: long contiguous streams for the prefetchers, still many
    // tasks per large matrix for balance.
    p.rows_per_task = std::max<int64_t>(1, 131072 / std::max<int64_t>(1, w.in_features * std::max<int64_t>(1, job.rows / 4)));
    task_start.push_back(tasks);
    tasks += (p.row_end - job.row_begin + p.rows_per_task - 1) / p.rows_per_task;
    prepared.push_back(p);
  }
  if (tasks == 0) return;
  int64_t work = 0;  // multiply-adds
  for (const PreparedJob& p : prepared) work += p.job.rows * (p.row_end - p.job.row_begin) * p.job.weight->in_features;
  const std::vector<PreparedJob>& jobs_ref = prepared;
  const std::vector<int64_t>& starts = task_start;
  // Waking the other threads costs microseconds: small products run on the caller alone.
  const int64_t grain = work < (int64_t{1} << 18) ? tasks : 1;
  pool.parallel_for(tasks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const size_t j = static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), t) - starts.begin() - 1);
      const PreparedJob& p = jobs_ref[j];
      const int64_t first = p.job.row_begin + (t - starts[j]) * p.rows_per_task;
      run_rows(kern, p, first, std::min(p.row_end, first + p.rows_per_task));
    }
  });
}

void linear(const LinearJob& job, ThreadPool& pool) { linear(std::span<const LinearJob>(&job, 1), pool); }

}  // namespace fp4serve::cpu
