#include "backend/cpu/linear.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <vector>

#include "base/error.h"
#include "backend/cpu/activation_quant.h"
#include "formats/number_formats.h"
#include "backend/cpu/row_kernels.h"

namespace fp4serve::cpu {
namespace {

constexpr int64_t kChunk = 256;  // weights decoded at a time: a multiple of every block size
// Block scales of one weight row held at a time (on the stack): in_features up to 64K
// in blocks of 16 (NVFP4); checked per weight.
constexpr int64_t kMaxScaleBlocks = 4096;

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
  FP4SERVE_CHECK(K <= 16 * kMaxScaleBlocks, "linear {}: in_features {} above the {} supported", w.name, K, 16 * kMaxScaleBlocks);
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

// How a job's activations are laid out for the bf16 kernels of the active level (kNone:
// the fp32 kernels read them as they are).
enum class Layout : uint8_t { kNone, kFp8, kFp4, kBf16 };

// One distinct activation input of a call, quantized and converted once for every job
// that reads it (wq_a and wkv, w1 and w3, the routed experts of a decode step).
struct Input {
  const float* source = nullptr;
  int64_t source_stride = 0, rows = 0, K = 0;
  ActivationQuant act = ActivationQuant::kNone;
  Layout layout = Layout::kNone;
  size_t quantized_at = 0, prepared_at = 0, first_unit = 0;
  bool quantize = false;
};

struct PreparedJob {
  LinearJob job;
  int64_t row_end = 0;
  int64_t y_stride = 0;
  const float* x = nullptr;
  int64_t x_stride = 0;
  int64_t rows_per_task = 1;               // weight rows per task
  int64_t block_rows = 1;                  // activation rows a task covers (<= kRowsPerTask)
  int64_t row_blocks = 1;                  // blocks of block_rows activation rows
  int input = -1;                          // index into the call's inputs, -1: x as given
  const uint16_t* x_prepared = nullptr;    // for RowKernels::dot_*_rows_prepared
};

// Activation rows a task covers: their bf16 copies (rows x K x 2 bytes) stay in the
// core's L2 while the task's weight rows stream past them, every weight row against all of
// them. At most 64 rows, and at most 256 KB of them: a 64-row block of wo_b's K = 8192
// (1 MB) would not fit a 1 MB L2 beside the weights and was read from L3 once per weight row.
constexpr int64_t kRowsPerTask = 64;
constexpr int64_t kTaskActivationBytes = 256 * 1024;

int64_t rows_per_block(int64_t K) {
  const int64_t fit = kTaskActivationBytes / (2 * std::max<int64_t>(1, K));
  return std::clamp<int64_t>(fit / kMaxDotRows * kMaxDotRows, kMaxDotRows, kRowsPerTask);
}

bool all_bf16_values(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if ((std::bit_cast<uint32_t>(x[i]) & 0xFFFFu) != 0) return false;
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
    default:  // block-scaled encodings take the tile kernels (run_rows)
      return nullptr;
  }
  return buf;
}

Layout layout_for(const RowKernels& kern, const LinearWeight& w) {
  if (w.encoding == WeightEncoding::kFP8Block && w.in_features % 128 == 0 && kern.prepare_fp8_x) return Layout::kFp8;
  if (w.encoding == WeightEncoding::kMXFP4 && w.in_features % 128 == 0 && kern.prepare_fp4_x) return Layout::kFp4;
  if (w.encoding == WeightEncoding::kNVFP4 && w.in_features % 128 == 0 && kern.prepare_fp4_x && kern.dot_nvfp4_rows_prepared)
    return Layout::kFp4;
  if (w.encoding == WeightEncoding::kBF16 && kern.prepare_bf16_x) return Layout::kBf16;
  return Layout::kNone;
}

// Quantizes and converts row m of an input (one unit of the preparation work); returns
// whether the row holds bf16 values only (the bf16 kernels need that).
bool prepare_row(const RowKernels& kern, const Input& in, int64_t m, float* quantized, uint16_t* prepared) {
  const float* x = in.source + m * in.source_stride;
  if (in.quantize) {
    float* q = quantized + in.quantized_at + static_cast<size_t>(m * in.K);
    fp8_quantize_dequantize(x, in.K, 128, q);
    x = q;
  }
  if (in.layout == Layout::kNone || !all_bf16_values(x, in.K)) return false;
  uint16_t* out = prepared + in.prepared_at + static_cast<size_t>(m * in.K);
  (in.layout == Layout::kFp8 ? kern.prepare_fp8_x : in.layout == Layout::kFp4 ? kern.prepare_fp4_x : kern.prepare_bf16_x)(x, in.K, out);
  return true;
}

// Quantizes and converts every row of every input once (row_is_bf16[unit] says whether
// the row went into the bf16 kernels' layout), over all threads when there is enough of
// it (prefill); a decode step's few rows stay on this thread.
void prepare_inputs(const RowKernels& kern, ThreadPool& pool, const std::vector<Input>& inputs, float* quantized,
                    uint16_t* prepared, uint8_t* row_is_bf16) {
  thread_local std::vector<int64_t> unit_input;
  unit_input.clear();
  int64_t floats = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    for (int64_t m = 0; m < inputs[i].rows; ++m) unit_input.push_back(static_cast<int64_t>(i));
    floats += inputs[i].rows * inputs[i].K;
  }
  const std::vector<int64_t>& owner = unit_input;
  const int64_t units = static_cast<int64_t>(owner.size());
  pool.parallel_for(units, floats < (int64_t{1} << 16) ? units : 1, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; ++u) {
      const Input& in = inputs[static_cast<size_t>(owner[static_cast<size_t>(u)])];
      row_is_bf16[u] = prepare_row(kern, in, u - static_cast<int64_t>(in.first_unit), quantized, prepared) ? 1 : 0;
    }
  });
}

// Weight rows [n_begin, n_end) against activation rows [m_begin, m_end): each weight
// row is decoded once per group of kMaxDotRows activation rows (in registers for the
// block-scaled encodings, into `buf` for BF16 / F16 / F32) and the group's rows all use
// it; the row (a few KB) stays in L1 for the next group.
void run_rows(const RowKernels& kern, const PreparedJob& p, int64_t n_begin, int64_t n_end, int64_t m_begin, int64_t m_end) {
  const LinearWeight& w = *p.job.weight;
  const int64_t K = w.in_features;
  // Stack buffers: a pool thread's first task must not allocate (decode is allocation-free).
  float acc[kRowsPerTask];
  float buf[kChunk];
  const float post_scale = w.encoding == WeightEncoding::kNVFP4 ? w.global_scale : 1.0f;
  auto store = [&](int64_t m, int64_t n, float v) {
    v *= post_scale;
    p.job.y[m * p.y_stride + (n - p.job.row_begin)] = p.job.round_bf16 ? round_bf16(v) : v;
  };
  // Encodings with a tile kernel use it for every activation row, so a row's result
  // never depends on how many rows share the call (decode = prefill, batch-invariant).
  const bool tile_kernel = w.encoding == WeightEncoding::kFP8Block || w.encoding == WeightEncoding::kMXFP4 ||
                           w.encoding == WeightEncoding::kNVFP4 || (w.encoding == WeightEncoding::kBF16 && p.x_prepared);
  if (tile_kernel) {
    const bool mx = w.encoding == WeightEncoding::kMXFP4;
    // Prefill: two weight rows at a time where the level has the paired kernel.
    const bool pairs = p.x_prepared && m_end - m_begin > 1 &&
                       ((w.encoding == WeightEncoding::kFP8Block && kern.dot_fp8_rows_prepared_x2) ||
                        (mx && kern.dot_mxfp4_rows_prepared_x2));
    float scales[2][kMaxScaleBlocks];
    int64_t scale_group[2] = {-1, -1};  // FP8: 128 weight rows share a row of block scales
    const uint8_t* fp4_scales[2] = {nullptr, nullptr};
    // The scales of weight row n into slot i.
    auto load_scales = [&](int i, int64_t n) {
      if (w.encoding == WeightEncoding::kFP8Block) {
        if (n / 128 == scale_group[i]) return;
        scale_group[i] = n / 128;
        const int64_t kb = (K + 127) / 128, base = scale_group[i] * kb;
        for (int64_t b = 0; b < kb; ++b)
          scales[i][b] = w.scale.dtype == DType::F32 ? w.scale.as<float>()[base + b] : decode_e8m0(w.scale.as<uint8_t>()[base + b]);
      } else if (w.encoding == WeightEncoding::kMXFP4 || w.encoding == WeightEncoding::kNVFP4) {
        const int64_t block = mx ? 32 : 16;
        fp4_scales[i] = w.scale.as<uint8_t>() + n * (K / block);
        if (!p.x_prepared)  // the prepared kernels read the scale bytes themselves
          for (int64_t b = 0; b < K / block; ++b)
            scales[i][b] = mx ? decode_e8m0(fp4_scales[i][b]) : decode_e4m3(fp4_scales[i][b]);
      }
    };
    const bool four_bit = mx || w.encoding == WeightEncoding::kNVFP4;
    auto row_bytes = [&](int64_t n) { return w.weight.as<uint8_t>() + n * (four_bit ? K / 2 : K); };
    for (int64_t n = n_begin; n < n_end;) {
      const int nw = pairs && n + 1 < n_end ? 2 : 1;
      for (int i = 0; i < nw; ++i) load_scales(i, n + i);
      for (int64_t m0 = m_begin; m0 < m_end; m0 += kMaxDotRows) {
        const int rows = static_cast<int>(std::min<int64_t>(kMaxDotRows, m_end - m0));
        const float* xs[kMaxDotRows];
        const uint16_t* xps[kMaxDotRows];
        for (int r = 0; r < rows; ++r) {
          xs[r] = p.x + (m0 + r) * p.x_stride;
          xps[r] = p.x_prepared ? p.x_prepared + (m0 + r) * K : nullptr;
        }
        float v[2][kMaxDotRows];
        if (nw == 2) {
          const uint8_t* ws[2] = {row_bytes(n), row_bytes(n + 1)};
          float* outs[2] = {v[0], v[1]};
          if (mx) {
            kern.dot_mxfp4_rows_prepared_x2(ws, K, fp4_scales, xps, rows, outs);
          } else {
            const float* ss[2] = {scales[0], scales[1]};
            kern.dot_fp8_rows_prepared_x2(ws, K, ss, xps, rows, outs);
          }
        } else {
          switch (w.encoding) {
            case WeightEncoding::kBF16: kern.dot_bf16_rows_prepared(w.weight.as<uint16_t>() + n * K, K, xps, rows, v[0]); break;
            case WeightEncoding::kFP8Block:
              if (p.x_prepared) kern.dot_fp8_rows_prepared(row_bytes(n), K, scales[0], xps, rows, v[0]);
              else kern.dot_fp8_rows(row_bytes(n), K, scales[0], xs, rows, v[0]);
              break;
            default:
              if (mx && p.x_prepared) kern.dot_mxfp4_rows_prepared(row_bytes(n), K, fp4_scales[0], xps, rows, v[0]);
              else if (p.x_prepared) kern.dot_nvfp4_rows_prepared(row_bytes(n), K, fp4_scales[0], xps, rows, v[0]);
              else kern.dot_fp4_rows(row_bytes(n), K, scales[0], mx ? 32 : 16, xs, rows, v[0]);
              break;
          }
        }
        for (int i = 0; i < nw; ++i)
          for (int r = 0; r < rows; ++r) store(m0 + r, n + i, v[i][r]);
      }
      n += nw;
    }
    return;
  }
  for (int64_t n = n_begin; n < n_end; ++n) {
    std::fill(acc, acc + (m_end - m_begin), 0.0f);
    for (int64_t k0 = 0; k0 < K; k0 += kChunk) {
      const int64_t len = std::min(kChunk, K - k0);
      const float* wrow = decode_stretch(kern, w, n, k0, len, buf);
      for (int64_t m0 = m_begin; m0 < m_end; m0 += kMaxDotRows) {
        const int rows = static_cast<int>(std::min<int64_t>(kMaxDotRows, m_end - m0));
        const float* xs[kMaxDotRows];
        for (int r = 0; r < rows; ++r) xs[r] = p.x + (m0 + r) * p.x_stride + k0;
        kern.dot(wrow, len, xs, rows, acc + (m0 - m_begin));
      }
    }
    for (int64_t m = m_begin; m < m_end; ++m) store(m, n, acc[m - m_begin]);
  }
}

}  // namespace

void linear(std::span<const LinearJob> jobs, ActivationObserver* observer, ThreadPool& pool) {
  if (observer != nullptr)
    for (const LinearJob& job : jobs)
      if (job.weight && job.x && job.rows > 0)
        observer->observe(*job.weight, job.x, job.rows, job.x_stride > 0 ? job.x_stride : job.weight->in_features);
  thread_local std::vector<PreparedJob> prepared;
  thread_local std::vector<int64_t> task_start;
  thread_local std::vector<float> quantized;
  thread_local std::vector<uint16_t> bf16_inputs;
  thread_local std::vector<Input> inputs;
  thread_local std::vector<uint8_t> row_is_bf16;
  prepared.clear();
  inputs.clear();
  const RowKernels& kern = row_kernels(active_isa());
  task_start.clear();

  for (const LinearJob& job : jobs) {
    FP4SERVE_CHECK(job.weight != nullptr, "linear: job without a weight");
    const LinearWeight& w = *job.weight;
    check_weight(w);
    const int64_t row_end = job.row_end < 0 ? w.out_features : job.row_end;
    FP4SERVE_CHECK(job.row_begin >= 0 && job.row_begin < row_end && row_end <= w.out_features,
                   "linear {}: output rows [{}, {}) outside [0, {})", w.name, job.row_begin, row_end, w.out_features);
    FP4SERVE_CHECK(job.rows >= 0 && (job.rows == 0 || (job.x && job.y)), "linear {}: missing input or output", w.name);
    FP4SERVE_CHECK(job.act != ActivationQuant::kFP8Block128 || w.in_features % 128 == 0,
                   "linear {}: FP8 activation quantization needs in_features % 128 == 0, got {}", w.name, w.in_features);
  }

  // The distinct inputs: jobs reading the same rows with the same quantization and
  // layout share one copy.
  size_t quant_floats = 0, bf16_floats = 0, units = 0;
  for (const LinearJob& job : jobs) {
    if (job.rows == 0) continue;
    const LinearWeight& w = *job.weight;
    PreparedJob p;
    p.job = job;
    p.row_end = job.row_end < 0 ? w.out_features : job.row_end;
    p.y_stride = job.y_stride > 0 ? job.y_stride : p.row_end - job.row_begin;
    p.x = job.x;
    p.x_stride = job.x_stride > 0 ? job.x_stride : w.in_features;
    const Layout layout = layout_for(kern, w);
    if (job.act == ActivationQuant::kFP8Block128 || layout != Layout::kNone) {
      for (size_t i = 0; i < inputs.size() && p.input < 0; ++i) {
        const Input& in = inputs[i];
        if (in.source == job.x && in.source_stride == p.x_stride && in.rows == job.rows && in.K == w.in_features &&
            in.act == job.act && in.layout == layout)
          p.input = static_cast<int>(i);
      }
      if (p.input < 0) {
        Input in;
        in.source = job.x;
        in.source_stride = p.x_stride;
        in.rows = job.rows;
        in.K = w.in_features;
        in.act = job.act;
        in.layout = layout;
        in.quantize = job.act == ActivationQuant::kFP8Block128;
        in.quantized_at = quant_floats;
        in.prepared_at = bf16_floats;
        in.first_unit = units;
        const size_t n = static_cast<size_t>(job.rows * w.in_features);
        if (in.quantize) quant_floats += n;
        if (layout != Layout::kNone) bf16_floats += n;
        units += static_cast<size_t>(job.rows);
        p.input = static_cast<int>(inputs.size());
        inputs.push_back(in);
      }
    }
    p.block_rows = rows_per_block(w.in_features);
    const int64_t block_rows = std::min(job.rows, p.block_rows);
    // About 128K weights a task: long contiguous streams for the prefetchers, still many
    // tasks per large matrix for balance.
    p.rows_per_task = std::max<int64_t>(1, 131072 / std::max<int64_t>(1, w.in_features * std::max<int64_t>(1, block_rows / 4)));
    p.row_blocks = (job.rows + p.block_rows - 1) / p.block_rows;
    prepared.push_back(p);
  }
  if (prepared.empty()) return;
  if (quantized.size() < quant_floats) quantized.resize(quant_floats);
  if (bf16_inputs.size() < bf16_floats) bf16_inputs.resize(bf16_floats);
  if (row_is_bf16.size() < units) row_is_bf16.resize(units);

  if (units > 0) prepare_inputs(kern, pool, inputs, quantized.data(), bf16_inputs.data(), row_is_bf16.data());

  int64_t tasks = 0;
  for (PreparedJob& p : prepared) {
    if (p.input >= 0) {
      const Input& in = inputs[static_cast<size_t>(p.input)];
      if (in.quantize) {
        p.x = quantized.data() + in.quantized_at;
        p.x_stride = in.K;
      }
      // The bf16 kernels only when every row converted; else the fp32 kernels for all.
      const bool all_bf16 = in.layout != Layout::kNone &&
                            std::all_of(row_is_bf16.begin() + static_cast<std::ptrdiff_t>(in.first_unit),
                                        row_is_bf16.begin() + static_cast<std::ptrdiff_t>(in.first_unit) + in.rows,
                                        [](uint8_t v) { return v != 0; });
      if (all_bf16) p.x_prepared = bf16_inputs.data() + in.prepared_at;
    }
    task_start.push_back(tasks);
    tasks += p.row_blocks * ((p.row_end - p.job.row_begin + p.rows_per_task - 1) / p.rows_per_task);
  }
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
      // Activation-row blocks outermost: the threads share one block of activations
      // while each weight row is read once per block.
      const int64_t weight_tasks = (p.row_end - p.job.row_begin + p.rows_per_task - 1) / p.rows_per_task;
      const int64_t block = (t - starts[j]) / weight_tasks, first = p.job.row_begin + ((t - starts[j]) % weight_tasks) * p.rows_per_task;
      run_rows(kern, p, first, std::min(p.row_end, first + p.rows_per_task), block * p.block_rows,
               std::min(p.job.rows, (block + 1) * p.block_rows));
    }
  });
}

void linear(const LinearJob& job, ActivationObserver* observer, ThreadPool& pool) {
  linear(std::span<const LinearJob>(&job, 1), observer, pool);
}

}  // namespace fp4serve::cpu
