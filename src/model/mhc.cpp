#include "model/mhc.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/linear.h"
#include "formats/number_formats.h"
#include "model/parallel.h"

namespace fp4serve {
namespace {

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// Columns of D handled by one unit of the collapse / expand loops.
constexpr int64_t kColumnsPerUnit = 512;

// mixes[r] = (X[r] @ fn^T) * rsqrt(mean(X[r]^2) + eps): the linear first, then the scale.
void scaled_mixes(const HyperConnectionWeights& site, const float* X, int64_t rows, int64_t width, float eps, float* mixes) {
  const int64_t m = site.fn.out_features;
  cpu::linear(cpu::LinearJob{&site.fn, X, width, rows, mixes, m});
  parallel_units(rows, rows * width, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = X + r * width;
      float sum = 0.0f;
      for (int64_t i = 0; i < width; ++i) sum += x[i] * x[i];
      const float rs = 1.0f / std::sqrt(sum / static_cast<float>(width) + eps);
      for (int64_t j = 0; j < m; ++j) mixes[r * m + j] *= rs;
    }
  });
}

// u[r] = bf16(sum_j pre[r][j] X[r][j]) over rows x column blocks.
void collapse(const float* X, const float* pre, int64_t rows, int64_t D, int64_t hc, float* u) {
  const int64_t blocks = (D + kColumnsPerUnit - 1) / kColumnsPerUnit;
  parallel_units(rows * blocks, rows * D * hc * 2, [&](int64_t u0, int64_t u1) {
    for (int64_t unit = u0; unit < u1; ++unit) {
      const int64_t r = unit / blocks, d0 = (unit % blocks) * kColumnsPerUnit, d1 = std::min(D, d0 + kColumnsPerUnit);
      const float* x = X + r * hc * D;
      const float* p = pre + r * hc;
      for (int64_t d = d0; d < d1; ++d) {
        float s = 0.0f;
        for (int64_t j = 0; j < hc; ++j) s += p[j] * x[j * D + d];
        u[r * D + d] = round_bf16(s);
      }
    }
  });
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
  parallel_units(rows, rows * iters * hc * hc * 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      hc_split_sinkhorn(mixes + r * m, site.scale.data(), site.base.data(), hc, iters, hc_eps, mixing.pre + r * hc,
                        mixing.post + r * hc, mixing.comb + r * hc * hc);
  });
  collapse(X, mixing.pre, rows, D, hc, u);
}

void hc_post(const float* y, float* X, int64_t rows, int64_t D, const HcMixing& mixing) {
  const int64_t hc = mixing.hc;
  const int64_t blocks = (D + kColumnsPerUnit - 1) / kColumnsPerUnit;
  parallel_units(rows * blocks, rows * D * hc * (hc + 1) * 2, [&](int64_t u0, int64_t u1) {
    float out[16];
    for (int64_t unit = u0; unit < u1; ++unit) {
      const int64_t r = unit / blocks, d0 = (unit % blocks) * kColumnsPerUnit, d1 = std::min(D, d0 + kColumnsPerUnit);
      float* x = X + r * hc * D;
      const float* post = mixing.post + r * hc;
      const float* comb = mixing.comb + r * hc * hc;
      for (int64_t d = d0; d < d1; ++d) {
        for (int64_t k = 0; k < hc; ++k) {
          float s = 0.0f;
          for (int64_t j = 0; j < hc; ++j) s += comb[j * hc + k] * x[j * D + d];
          out[k] = round_bf16(post[k] * y[r * D + d] + s);
        }
        for (int64_t k = 0; k < hc; ++k) x[k * D + d] = out[k];
      }
    }
  });
}

void hc_head(const HyperConnectionWeights& site, const float* X, int64_t rows, int64_t D, int64_t hc, float norm_eps,
             float hc_eps, float* mixes, float* pre, float* y) {
  scaled_mixes(site, X, rows, hc * D, norm_eps, mixes);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < hc; ++j) pre[r * hc + j] = sigmoid(mixes[r * hc + j] * site.scale[0] + site.base[j]) + hc_eps;
  collapse(X, pre, rows, D, hc, y);
}

}  // namespace fp4serve
