// Embedding, RMSNorm, RoPE and the per-row preparation of attention on the GPU, with the
// rounding points of the CPU backend's norms, RoPE and attention.
#include <cuda_runtime.h>

#include "backend/cuda/ops/device_numerics.cuh"
#include "backend/cuda/ops/ops.h"

namespace fp4serve::cuda::ops {
namespace {

constexpr int kThreads = 256;

__global__ void embed_kernel(const void* table, EmbedTable type, int64_t dim, const int32_t* tokens, int64_t copies,
                             float* out) {
  const int64_t r = blockIdx.x, token = tokens[r];
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
    float v;
    if (type == EmbedTable::kBF16) v = bf16_bits_to_float(static_cast<const uint16_t*>(table)[token * dim + d]);
    else if (type == EmbedTable::kF16) v = round_bf16(__half2float(static_cast<const __half*>(table)[token * dim + d]));
    else v = round_bf16(static_cast<const float*>(table)[token * dim + d]);
    for (int64_t c = 0; c < copies; ++c) out[(r * copies + c) * dim + d] = v;
  }
}

__global__ void rms_norm_kernel(const float* x, int64_t x_stride, const float* weight, int64_t n, float eps, float* y,
                                int64_t y_stride) {
  __shared__ float red[32];
  const float* in = x + blockIdx.x * x_stride;
  float* out = y + blockIdx.x * y_stride;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += in[i] * in[i];
  sum = block_sum(sum, red);
  const float r = 1.0f / sqrtf(sum / static_cast<float>(n) + eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) out[i] = round_bf16(weight[i] * (in[i] * r));
}

__global__ void to_bf16_kernel(const float* x, int64_t x_stride, int64_t cols, uint16_t* out) {
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    out[blockIdx.x * cols + c] = __bfloat16_as_ushort(__float2bfloat16_rn(x[blockIdx.x * x_stride + c]));
}

__global__ void from_bf16_kernel(const uint16_t* y, int64_t cols, float* out, int64_t out_stride) {
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) out[blockIdx.x * out_stride + c] = bf16_bits_to_float(y[blockIdx.x * cols + c]);
}

__global__ void fill_kernel(float* dst, int64_t count, float value) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) dst[i] = value;
}

__global__ void scale_bf16_kernel(float* x, int64_t n, float scale) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] = round_bf16(x[i] * scale);
}

__global__ void add_broadcast_kernel(float* X, const float* e, int64_t hc, int64_t dim) {
  const int64_t t = blockIdx.x;
  for (int64_t i = threadIdx.x; i < hc * dim; i += blockDim.x) {
    float* v = X + t * hc * dim + i;
    *v = round_bf16(*v + e[t * dim + i % dim]);
  }
}

__global__ void gather_rows_kernel(const float* in, const int64_t* index, int64_t width, float* out) {
  const float* src = in + index[blockIdx.x] * width;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) out[blockIdx.x * width + i] = src[i];
}

__global__ void rope_angles_kernel(const float* freqs, int64_t half, const int64_t* positions, float* cos, float* sin) {
  const float p = static_cast<float>(positions[blockIdx.x]);
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    const float angle = p * freqs[i];
    cos[blockIdx.x * half + i] = cosf(angle);
    sin[blockIdx.x * half + i] = sinf(angle);
  }
}

// RoPE on v[0..rd) (pairs), all threads of the block; v in shared or global memory.
__device__ void rope_block(float* v, int64_t rd, const float* cos, const float* sin, bool inverse) {
  for (int64_t i = threadIdx.x; i < rd / 2; i += blockDim.x) rotate_pair(v + 2 * i, cos[i], sin[i], inverse);
}

// E4M3 or E2M1 quantize-dequantize of v[0..n) in blocks, one warp per block at a time.
template <bool kFp4>
__device__ void qdq_blocks(float* v, int64_t n, int64_t block) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  for (int64_t b = warp * block; b < n; b += warps * block) {
    float amax = 0.0f;
    for (int64_t i = lane; i < block; i += 32) amax = fmaxf(amax, fabsf(v[b + i]));
    amax = warp_max(amax);
    const float s = kFp4 ? pow2_ceil(fmaxf(amax, 6.0f * 0x1p-126f) * (1.0f / 6.0f))
                         : pow2_ceil(fmaxf(amax, 1e-4f) * (1.0f / 448.0f));
    const float inv = 1.0f / s;
    for (int64_t i = lane; i < block; i += 32) {
      const float q = v[b + i] * inv;
      v[b + i] = (kFp4 ? round_e2m1(fminf(fmaxf(q, -6.0f), 6.0f)) : round_e4m3(fminf(fmaxf(q, -448.0f), 448.0f))) * s;
    }
  }
}

// cpu::hadamard_rotate on v[0..n) (n a power of two) in shared memory.
__device__ void hadamard_block(float* v, int64_t n) {
  for (int64_t h = 1; h < n; h *= 2) {
    __syncthreads();
    for (int64_t p = threadIdx.x; p < n / 2; p += blockDim.x) {
      const int64_t j = (p / h) * 2 * h + p % h;
      const float a = v[j], b = v[j + h];
      v[j] = a + b;
      v[j + h] = a - b;
    }
  }
  __syncthreads();
  const float scale = static_cast<float>(1.0 / sqrt(static_cast<double>(n)));
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) v[i] = round_bf16(v[i] * scale);
}

// Block (row t, unit u): u < heads: a query head; u == heads: the kv row; else an indexer head.
__global__ void attention_prep_kernel(AttentionPrep p) {
  extern __shared__ float v[];
  __shared__ float red[32];
  const int64_t t = blockIdx.x, u = blockIdx.y;
  const float* cos = p.cos + t * p.rd / 2;
  const float* sin = p.sin + t * p.rd / 2;
  float* g;
  int64_t n;
  if (u < p.heads) g = p.q + (t * p.heads + u) * p.hd, n = p.hd;
  else if (u == p.heads) g = p.kv + t * p.hd, n = p.hd;
  else g = p.index_q + (t * p.index_heads + (u - p.heads - 1)) * p.index_hd, n = p.index_hd;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) v[i] = g[i];
  __syncthreads();
  if (u < p.heads) {
    // head_rms_norm_bf16: bf16 squares, fp32 sum, bf16 mean, bf16 eps sum, bf16 rsqrt.
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += round_bf16(v[i] * v[i]);
    sum = block_sum(sum, red);
    const float mean = round_bf16(sum / static_cast<float>(n));
    const float r = round_bf16(1.0f / sqrtf(round_bf16(mean + p.eps)));
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) v[i] = round_bf16(v[i] * r);
    __syncthreads();
    rope_block(v + n - p.rd, p.rd, cos, sin, false);
  } else if (u == p.heads) {
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += v[i] * v[i];
    sum = block_sum(sum, red);
    const float r = 1.0f / sqrtf(sum / static_cast<float>(n) + p.eps);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) v[i] = round_bf16(p.kv_norm[i] * (v[i] * r));
    __syncthreads();
    rope_block(v + n - p.rd, p.rd, cos, sin, false);
    __syncthreads();
    if (p.qat) qdq_blocks<false>(v, n - p.rd, 64);
  } else {
    rope_block(v + n - p.rd, p.rd, cos, sin, false);
    if (p.qat) {
      hadamard_block(v, n);
      __syncthreads();
      qdq_blocks<true>(v, n, 32);
    }
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) g[i] = v[i];
}

}  // namespace

void embed(cudaStream_t stream, const void* table, EmbedTable type, int64_t dim, const int32_t* tokens, int64_t rows,
           int64_t copies, float* out) {
  if (rows == 0) return;
  embed_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(table, type, dim, tokens, copies, out);
  check_launch("embed");
}

void rms_norm(cudaStream_t stream, const float* x, int64_t x_stride, const float* weight, int64_t rows, int64_t n,
              float eps, float* y, int64_t y_stride) {
  if (rows == 0) return;
  rms_norm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, x_stride, weight, n, eps, y, y_stride);
  check_launch("rms_norm");
}

void to_bf16(cudaStream_t stream, const float* x, int64_t x_stride, int64_t rows, int64_t cols, uint16_t* out) {
  if (rows == 0) return;
  to_bf16_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, x_stride, cols, out);
  check_launch("to_bf16");
}

void from_bf16(cudaStream_t stream, const uint16_t* y, int64_t rows, int64_t cols, float* out, int64_t out_stride) {
  if (rows == 0) return;
  from_bf16_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(y, cols, out, out_stride);
  check_launch("from_bf16");
}

void fill(cudaStream_t stream, float* dst, int64_t count, float value) {
  if (count == 0) return;
  fill_kernel<<<static_cast<unsigned>((count + kThreads - 1) / kThreads), kThreads, 0, stream>>>(dst, count, value);
  check_launch("fill");
}

void scale_bf16(cudaStream_t stream, float* x, int64_t n, float scale) {
  if (n == 0) return;
  scale_bf16_kernel<<<static_cast<unsigned>((n + kThreads - 1) / kThreads), kThreads, 0, stream>>>(x, n, scale);
  check_launch("scale_bf16");
}

void add_broadcast_bf16(cudaStream_t stream, float* X, const float* e, int64_t rows, int64_t hc, int64_t dim) {
  if (rows == 0) return;
  add_broadcast_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(X, e, hc, dim);
  check_launch("add_broadcast_bf16");
}

void gather_rows(cudaStream_t stream, const float* in, const int64_t* index, int64_t rows, int64_t width, float* out) {
  if (rows == 0) return;
  gather_rows_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(in, index, width, out);
  check_launch("gather_rows");
}

void rope_angles(cudaStream_t stream, const float* freqs, int64_t rd, const int64_t* positions, int64_t rows,
                 float* cos, float* sin) {
  if (rows == 0) return;
  rope_angles_kernel<<<static_cast<unsigned>(rows), 64, 0, stream>>>(freqs, rd / 2, positions, cos, sin);
  check_launch("rope_angles");
}

void attention_prep(cudaStream_t stream, const AttentionPrep& p) {
  if (p.rows == 0) return;
  require(p.index_q == nullptr || (p.index_hd & (p.index_hd - 1)) == 0, "attention_prep: index_head_dim must be a power of two");
  require(!p.qat || ((p.hd - p.rd) % 64 == 0 && (p.index_q == nullptr || p.index_hd % 32 == 0)),
          "attention_prep: the QAT blocks (64 nope dims, 32 indexer dims) must tile the vectors");
  const int64_t units = p.heads + 1 + (p.index_q ? p.index_heads : 0);
  const int64_t widest = p.index_q && p.index_hd > p.hd ? p.index_hd : p.hd;
  const size_t smem = static_cast<size_t>(widest) * sizeof(float);
  if (smem > 48 * 1024) cudaFuncSetAttribute(attention_prep_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  attention_prep_kernel<<<dim3(static_cast<unsigned>(p.rows), static_cast<unsigned>(units)), 128, smem, stream>>>(p);
  check_launch("attention_prep");
}

}  // namespace fp4serve::cuda::ops
