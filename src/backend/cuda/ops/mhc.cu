// Manifold-constrained hyper-connections on the GPU (the CPU backend's mhc.cpp): the rms scale of
// the mixes, the Sinkhorn split (one thread per row: hc is 4, the work is tiny and serial),
// the collapse and the expansion, with the CPU's order of every sum.
#include <cuda_runtime.h>

#include "backend/cuda/ops/device_numerics.cuh"
#include "backend/cuda/ops/ops.h"

namespace fp4serve::cuda::ops {
namespace {

constexpr int kMaxHc = 16;

__global__ void scale_mixes_kernel(const float* X, int64_t width, float eps, float* mixes, int64_t m) {
  __shared__ float red[32];
  const float* x = X + blockIdx.x * width;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) sum += x[i] * x[i];
  sum = block_sum(sum, red);
  const float rs = 1.0f / sqrtf(sum / static_cast<float>(width) + eps);
  for (int64_t j = threadIdx.x; j < m; j += blockDim.x) mixes[blockIdx.x * m + j] *= rs;
}

__global__ void sinkhorn_kernel(const float* all_mixes, const float* scale, const float* base, int64_t rows, int64_t hc,
                                int64_t iters, float eps, float* all_pre, float* all_post, float* all_comb) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const float* mixes = all_mixes + r * (2 + hc) * hc;
  float* pre = all_pre + r * hc;
  float* post = all_post + r * hc;
  float* comb = all_comb + r * hc * hc;
  for (int64_t j = 0; j < hc; ++j) {
    pre[j] = sigmoid(mixes[j] * scale[0] + base[j]) + eps;
    post[j] = 2.0f * sigmoid(mixes[hc + j] * scale[1] + base[hc + j]);
  }
  float c[kMaxHc * kMaxHc];
  for (int64_t j = 0; j < hc; ++j) {
    float mx = -INFINITY;
    for (int64_t k = 0; k < hc; ++k) {
      c[j * hc + k] = mixes[2 * hc + j * hc + k] * scale[2] + base[2 * hc + j * hc + k];
      mx = fmaxf(mx, c[j * hc + k]);
    }
    float sum = 0.0f;
    for (int64_t k = 0; k < hc; ++k) sum += (c[j * hc + k] = expf(c[j * hc + k] - mx));
    for (int64_t k = 0; k < hc; ++k) c[j * hc + k] = c[j * hc + k] / sum + eps;
  }
  for (int64_t it = 0; it < (iters > 1 ? iters : 1); ++it) {  // the column pass runs at least once
    if (it > 0) {
      for (int64_t j = 0; j < hc; ++j) {
        float sum = 0.0f;
        for (int64_t k = 0; k < hc; ++k) sum += c[j * hc + k];
        for (int64_t k = 0; k < hc; ++k) c[j * hc + k] /= sum + eps;
      }
    }
    for (int64_t k = 0; k < hc; ++k) {
      float sum = 0.0f;
      for (int64_t j = 0; j < hc; ++j) sum += c[j * hc + k];
      for (int64_t j = 0; j < hc; ++j) c[j * hc + k] /= sum + eps;
    }
  }
  for (int64_t i = 0; i < hc * hc; ++i) comb[i] = c[i];
}

__global__ void head_weights_kernel(const float* mixes, const float* scale, const float* base, int64_t rows, int64_t hc,
                                    float eps, float* pre) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < rows * hc) pre[i] = sigmoid(mixes[i] * scale[0] + base[i % hc]) + eps;
}

__global__ void collapse_kernel(const float* X, const float* pre, int64_t dim, int64_t hc, float* u) {
  const int64_t r = blockIdx.y;
  const int64_t d = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (d >= dim) return;
  const float* x = X + r * hc * dim;
  float s = 0.0f;
  for (int64_t j = 0; j < hc; ++j) s += pre[r * hc + j] * x[j * dim + d];
  u[r * dim + d] = round_bf16(s);
}

__global__ void post_kernel(const float* y, float* X, int64_t dim, int64_t hc, const float* post, const float* comb) {
  const int64_t r = blockIdx.y;
  const int64_t d = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (d >= dim) return;
  float* x = X + r * hc * dim;
  const float* p = post + r * hc;
  const float* c = comb + r * hc * hc;
  float in[kMaxHc], out[kMaxHc];
  for (int64_t j = 0; j < hc; ++j) in[j] = x[j * dim + d];
  for (int64_t k = 0; k < hc; ++k) {
    float s = 0.0f;
    for (int64_t j = 0; j < hc; ++j) s += c[j * hc + k] * in[j];
    out[k] = round_bf16(p[k] * y[r * dim + d] + s);
  }
  for (int64_t k = 0; k < hc; ++k) x[k * dim + d] = out[k];
}

dim3 column_grid(int64_t dim, int64_t rows) {
  return dim3(static_cast<unsigned>((dim + 255) / 256), static_cast<unsigned>(rows));
}

}  // namespace

void hc_scale_mixes(cudaStream_t stream, const float* X, int64_t rows, int64_t width, float eps, float* mixes, int64_t m) {
  if (rows == 0) return;
  scale_mixes_kernel<<<static_cast<unsigned>(rows), 256, 0, stream>>>(X, width, eps, mixes, m);
  check_launch("hc_scale_mixes");
}

void hc_sinkhorn(cudaStream_t stream, const float* mixes, const float* scale, const float* base, int64_t rows,
                 int64_t hc, int64_t iters, float eps, float* pre, float* post, float* comb) {
  require(hc > 0 && hc <= kMaxHc, "hc_sinkhorn: hc_mult must be in [1, 16]");
  if (rows == 0) return;
  sinkhorn_kernel<<<static_cast<unsigned>((rows + 63) / 64), 64, 0, stream>>>(mixes, scale, base, rows, hc, iters, eps,
                                                                               pre, post, comb);
  check_launch("hc_sinkhorn");
}

void hc_head_weights(cudaStream_t stream, const float* mixes, const float* scale, const float* base, int64_t rows,
                     int64_t hc, float eps, float* pre) {
  if (rows == 0) return;
  head_weights_kernel<<<static_cast<unsigned>((rows * hc + 255) / 256), 256, 0, stream>>>(mixes, scale, base, rows, hc,
                                                                                           eps, pre);
  check_launch("hc_head_weights");
}

void hc_collapse(cudaStream_t stream, const float* X, const float* pre, int64_t rows, int64_t dim, int64_t hc, float* u) {
  if (rows == 0) return;
  collapse_kernel<<<column_grid(dim, rows), 256, 0, stream>>>(X, pre, dim, hc, u);
  check_launch("hc_collapse");
}

void hc_post(cudaStream_t stream, const float* y, float* X, int64_t rows, int64_t dim, int64_t hc, const float* post,
             const float* comb) {
  require(hc > 0 && hc <= kMaxHc, "hc_post: hc_mult must be in [1, 16]");
  if (rows == 0) return;
  post_kernel<<<column_grid(dim, rows), 256, 0, stream>>>(y, X, dim, hc, post, comb);
  check_launch("hc_post");
}

}  // namespace fp4serve::cuda::ops
