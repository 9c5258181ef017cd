#include "backend/cpu/mhc.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/linear.h"
#include "formats/number_formats.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/scratch.h"

namespace fp4serve::cpu {
namespace {

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// Columns of D handled by one unit of the collapse / expand loops.
constexpr int64_t kColumnsPerUnit = 512;

// mixes[r] = (X[r] @ fn^T) * rsqrt(mean(X[r]^2) + eps): the linear first, then the scale.
void scaled_mixes(const HcSite& site, const float* X, int64_t rows, int64_t width, float eps, float* mixes,
                  ActivationObserver* observer) {
  const int64_t m = site.fn->out_features;
  linear(LinearJob{site.fn, X, width, rows, mixes, m}, observer);
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

void hc_pre(const HcPreParams& p, ActivationObserver* observer) {
  const int64_t hc = p.hc, m = (2 + hc) * hc;
  scaled_mixes(p.site, p.X, p.rows, hc * p.dim, p.norm_eps, p.mixes, observer);
  parallel_units(p.rows, p.rows * p.sinkhorn_iters * hc * hc * 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      hc_split_sinkhorn(p.mixes + r * m, p.site.scale, p.site.base, hc, p.sinkhorn_iters, p.hc_eps, p.pre + r * hc,
                        p.post + r * hc, p.comb + r * hc * hc);
  });
  collapse(p.X, p.pre, p.rows, p.dim, hc, p.u);
}

void hc_post(const HcPostParams& p) {
  const int64_t hc = p.hc, D = p.dim, rows = p.rows;
  const int64_t blocks = (D + kColumnsPerUnit - 1) / kColumnsPerUnit;
  parallel_units(rows * blocks, rows * D * hc * (hc + 1) * 2, [&](int64_t u0, int64_t u1) {
    float out[16];
    for (int64_t unit = u0; unit < u1; ++unit) {
      const int64_t r = unit / blocks, d0 = (unit % blocks) * kColumnsPerUnit, d1 = std::min(D, d0 + kColumnsPerUnit);
      float* x = p.X + r * hc * D;
      const float* post = p.post + r * hc;
      const float* comb = p.comb + r * hc * hc;
      for (int64_t d = d0; d < d1; ++d) {
        for (int64_t k = 0; k < hc; ++k) {
          float s = 0.0f;
          for (int64_t j = 0; j < hc; ++j) s += comb[j * hc + k] * x[j * D + d];
          out[k] = round_bf16(post[k] * p.y[r * D + d] + s);
        }
        for (int64_t k = 0; k < hc; ++k) x[k * D + d] = out[k];
      }
    }
  });
}

void hc_head(const HcHeadParams& p, HcHeadScratch& scratch, ActivationObserver* observer) {
  const int64_t hc = p.hc, D = p.dim, rows = p.rows;
  float* picked = grow_scratch(scratch.gathered, rows * hc * D);
  for (int64_t i = 0; i < rows; ++i)
    std::memcpy(picked + i * hc * D, p.X + p.row_ids[i] * hc * D, static_cast<size_t>(hc * D) * sizeof(float));
  float* mixes = grow_scratch(scratch.mixes, rows * hc);
  float* pre = grow_scratch(scratch.pre, rows * hc);
  scaled_mixes(p.site, picked, rows, hc * D, p.norm_eps, mixes, observer);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < hc; ++j) pre[r * hc + j] = sigmoid(mixes[r * hc + j] * p.site.scale[0] + p.site.base[j]) + p.hc_eps;
  collapse(picked, pre, rows, D, hc, p.y);
}

}  // namespace fp4serve::cpu
