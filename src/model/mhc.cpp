#include "model/mhc.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/linear.h"
#include "kernels/cpu/numeric_formats.h"

namespace fp4serve {
namespace {

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// mixes[r] = (X[r] @ fn^T) * rsqrt(mean(X[r]^2) + eps): the linear first, then the scale.
void scaled_mixes(const HyperConnectionWeights& site, const float* X, int64_t rows, int64_t width, float eps, float* mixes) {
  const int64_t m = site.fn.out_features;
  cpu::linear(cpu::LinearJob{&site.fn, X, width, rows, mixes, m});
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = X + r * width;
    float sum = 0.0f;
    for (int64_t i = 0; i < width; ++i) sum += x[i] * x[i];
    const float rs = 1.0f / std::sqrt(sum / static_cast<float>(width) + eps);
    for (int64_t j = 0; j < m; ++j) mixes[r * m + j] *= rs;
  }
}

}  // namespace

void hc_split_sinkhorn(const float* mixes, const float* scale, const float* base, int64_t hc, int64_t iters, float eps,
                       float* pre, float* post, float* comb) {
  for (int64_t j = 0; j < hc; ++j) {
    pre[j] = sigmoid(mixes[j] * scale[0] + base[j]) + eps;
    post[j] = 2.0f * sigmoid(mixes[hc + j] * scale[1] + base[hc + j]);
  }
  for (int64_t j = 0; j < hc; ++j) {
    float* row = comb + j * hc;
    float mx = -INFINITY;
    for (int64_t k = 0; k < hc; ++k) {
      row[k] = mixes[2 * hc + j * hc + k] * scale[2] + base[2 * hc + j * hc + k];
      mx = std::max(mx, row[k]);
    }
    float sum = 0.0f;
    for (int64_t k = 0; k < hc; ++k) sum += (row[k] = std::exp(row[k] - mx));
    for (int64_t k = 0; k < hc; ++k) row[k] = row[k] / sum + eps;
  }
  auto normalize_columns = [&] {
    for (int64_t k = 0; k < hc; ++k) {
      float sum = 0.0f;
      for (int64_t j = 0; j < hc; ++j) sum += comb[j * hc + k];
      for (int64_t j = 0; j < hc; ++j) comb[j * hc + k] /= sum + eps;
    }
  };
  normalize_columns();
  for (int64_t it = 1; it < iters; ++it) {
    for (int64_t j = 0; j < hc; ++j) {
      float sum = 0.0f;
      for (int64_t k = 0; k < hc; ++k) sum += comb[j * hc + k];
      for (int64_t k = 0; k < hc; ++k) comb[j * hc + k] /= sum + eps;
    }
    normalize_columns();
  }
}

void hc_pre(const HyperConnectionWeights& site, const float* X, int64_t rows, int64_t D, int64_t hc, int64_t iters,
            float norm_eps, float hc_eps, float* mixes, float* u, HcMixing mixing) {
  const int64_t m = (2 + hc) * hc;
  scaled_mixes(site, X, rows, hc * D, norm_eps, mixes);
  float pre[16];
  for (int64_t r = 0; r < rows; ++r) {
    hc_split_sinkhorn(mixes + r * m, site.scale.data(), site.base.data(), hc, iters, hc_eps, pre, mixing.post + r * hc,
                      mixing.comb + r * hc * hc);
    const float* x = X + r * hc * D;
    for (int64_t d = 0; d < D; ++d) {
      float s = 0.0f;
      for (int64_t j = 0; j < hc; ++j) s += pre[j] * x[j * D + d];
      u[r * D + d] = cpu::round_bf16(s);
    }
  }
}

void hc_post(const float* y, float* X, int64_t rows, int64_t D, const HcMixing& mixing) {
  const int64_t hc = mixing.hc;
  float out[16];
  for (int64_t r = 0; r < rows; ++r) {
    float* x = X + r * hc * D;
    const float* post = mixing.post + r * hc;
    const float* comb = mixing.comb + r * hc * hc;
    for (int64_t d = 0; d < D; ++d) {
      for (int64_t k = 0; k < hc; ++k) {
        float s = 0.0f;
        for (int64_t j = 0; j < hc; ++j) s += comb[j * hc + k] * x[j * D + d];
        out[k] = cpu::round_bf16(post[k] * y[r * D + d] + s);
      }
      for (int64_t k = 0; k < hc; ++k) x[k * D + d] = out[k];
    }
  }
}

void hc_head(const HyperConnectionWeights& site, const float* X, int64_t rows, int64_t D, int64_t hc, float norm_eps,
             float hc_eps, float* mixes, float* y) {
  scaled_mixes(site, X, rows, hc * D, norm_eps, mixes);
  float pre[16];
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < hc; ++j) pre[j] = sigmoid(mixes[r * hc + j] * site.scale[0] + site.base[j]) + hc_eps;
    const float* x = X + r * hc * D;
    for (int64_t d = 0; d < D; ++d) {
      float s = 0.0f;
      for (int64_t j = 0; j < hc; ++j) s += pre[j] * x[j * D + d];
      y[r * D + d] = cpu::round_bf16(s);
    }
  }
}

}  // namespace fp4serve
