// The exact linear: every weight encoding dequantized on the fly, fp32 accumulation, one
// warp per output value. It runs the linears the Hopper GEMMs cannot take (shapes off their
// K % 128 / N % 16 tiles, fp32 outputs such as the MoE gate and the compressors' wkv/wgate,
// F32 weights, FP8/MXFP4 weights with activation quantization off) with the CPU's numerics:
// the same products and one fp32 sum per output (in another order, so within fp32 rounding).
#include <cuda_runtime.h>

#include "backend/cuda/ops/device_numerics.cuh"
#include "backend/cuda/ops/ops.h"

namespace fp4serve::cuda {

namespace ops {
namespace {

__device__ __forceinline__ float weight_value(const ExactWeight& w, int64_t n, int64_t k) {
  switch (w.kind) {
    case ExactWeightKind::kBF16: return bf16_bits_to_float(static_cast<const uint16_t*>(w.weight)[n * w.k + k]);
    case ExactWeightKind::kF32: return static_cast<const float*>(w.weight)[n * w.k + k];
    case ExactWeightKind::kFP8Block: {
      const float s = static_cast<const float*>(w.scale)[(n / 128) * ((w.k + 127) / 128) + k / 128];
      return e4m3_value(static_cast<const uint8_t*>(w.weight)[n * w.k + k]) * s;
    }
    case ExactWeightKind::kMXFP4:
    case ExactWeightKind::kNVFP4: {
      const uint8_t byte = static_cast<const uint8_t*>(w.weight)[n * (w.k / 2) + k / 2];
      const float v = e2m1_value((k & 1) ? byte >> 4 : byte & 0xF);
      const uint8_t* scales = static_cast<const uint8_t*>(w.scale);
      return w.kind == ExactWeightKind::kMXFP4 ? v * e8m0_value(scales[n * (w.k / 32) + k / 32])
                                               : v * e4m3_value(scales[n * (w.k / 16) + k / 16]);
    }
  }
  return 0.0f;
}

__device__ __forceinline__ float dot_row(const ExactWeight& w, int64_t n, const float* x, int lane) {
  float acc = 0.0f;
  for (int64_t k = lane; k < w.k; k += 32) acc += x[k] * weight_value(w, n, k);
  acc = warp_sum(acc);
  return acc * (w.kind == ExactWeightKind::kNVFP4 ? w.global_scale : 1.0f);
}

constexpr int kWarpsPerBlock = 8;

__global__ void linear_exact_kernel(ExactLinear job) {
  const int lane = threadIdx.x % 32;
  const int64_t cols = job.row_end - job.row_begin;
  const int64_t out = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (out >= job.rows * cols) return;
  const int64_t m = out / cols, n = job.row_begin + out % cols;
  const float v = dot_row(job.w, n, job.x + m * job.x_stride, lane);
  if (lane == 0) job.y[m * job.y_stride + (n - job.row_begin)] = job.round_bf16 ? round_bf16(v) : v;
}

__global__ void linear_gathered_kernel(const ExactWeight* weights, const int32_t* expert, const float* x,
                                       int64_t x_stride, int64_t x_row_divisor, int64_t rows, int64_t n_out, float* y,
                                       bool round) {
  const int lane = threadIdx.x % 32;
  const int64_t out = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (out >= rows * n_out) return;
  const int64_t a = out / n_out, n = out % n_out;
  const ExactWeight& w = weights[expert[a]];
  if (w.weight == nullptr) {  // another rank's expert (expert parallelism): adds exactly 0, not computed
    if (lane == 0) y[a * n_out + n] = 0.0f;
    return;
  }
  const float v = dot_row(w, n, x + (a / x_row_divisor) * x_stride, lane);
  if (lane == 0) y[a * n_out + n] = round ? round_bf16(v) : v;
}

__global__ void fp8_qdq_kernel(const float* x, int64_t x_stride, int64_t rows, int64_t blocks, int64_t block,
                               float* out, int64_t out_stride) {
  const int lane = threadIdx.x % 32;
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (b >= rows * blocks) return;
  const int64_t r = b / blocks, c0 = (b % blocks) * block;
  const float* in = x + r * x_stride + c0;
  float amax = 0.0f;
  for (int64_t i = lane; i < block; i += 32) amax = fmaxf(amax, fabsf(in[i]));
  amax = warp_max(amax);
  const float s = pow2_ceil(fmaxf(amax, 1e-4f) * (1.0f / 448.0f));
  const float inv = 1.0f / s;
  float* o = out + r * out_stride + c0;
  for (int64_t i = lane; i < block; i += 32) o[i] = round_e4m3(fminf(fmaxf(in[i] * inv, -448.0f), 448.0f)) * s;
}

unsigned grid_for(int64_t warps) { return static_cast<unsigned>((warps + kWarpsPerBlock - 1) / kWarpsPerBlock); }

}  // namespace

void linear_exact(cudaStream_t stream, const ExactLinear& job) {
  const int64_t outputs = job.rows * (job.row_end - job.row_begin);
  if (outputs == 0) return;
  linear_exact_kernel<<<grid_for(outputs), kWarpsPerBlock * 32, 0, stream>>>(job);
  check_launch("linear_exact");
}

void linear_exact_gathered(cudaStream_t stream, const ExactWeight* weights, const int32_t* expert, const float* x,
                           int64_t x_stride, int64_t x_row_divisor, int64_t rows, int64_t n, int64_t k, float* y,
                           bool round_bf16) {
  if (rows * n == 0) return;
  linear_gathered_kernel<<<grid_for(rows * n), kWarpsPerBlock * 32, 0, stream>>>(weights, expert, x, x_stride, x_row_divisor,
                                                                                 rows, n, y, round_bf16);
  check_launch("linear_exact_gathered");
}

void fp8_quantize_dequantize(cudaStream_t stream, const float* x, int64_t x_stride, int64_t rows, int64_t cols,
                             int64_t block, float* out, int64_t out_stride) {
  require(block > 0 && cols % block == 0, "fp8_quantize_dequantize: columns must be whole blocks");
  const int64_t blocks = cols / block;
  if (rows * blocks == 0) return;
  fp8_qdq_kernel<<<grid_for(rows * blocks), kWarpsPerBlock * 32, 0, stream>>>(x, x_stride, rows, blocks, block, out,
                                                                              out_stride);
  check_launch("fp8_quantize_dequantize");
}

}  // namespace ops
}  // namespace fp4serve::cuda
