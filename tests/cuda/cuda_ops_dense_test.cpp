// GPU ops against the CPU ops on fresh random inputs: the exact linear of every encoding
// (with and without FP8 activations, bf16 and fp32 outputs, groups of output rows), FP8
// activation quantization, embedding, RMSNorm, mHC, the attention row preparation, and
// the MoE's routing, SwiGLU and combine. Decode (1 row) and prefill (> 16 rows) shapes.
//
// These call the CPU ops as src/model/ declares them before the backend seam; once the CPU
// backend (backend/cpu/cpu_backend.h) exists, cuda_backend_test.cpp compares the same ops
// through the Backend interface and this file compiles to nothing (port or drop it then).
#if defined(FP4SERVE_HAVE_CUDA) && !__has_include("backend/cpu/cpu_backend.h")
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "../backend_cpu/test_weights.h"
#include "backend/cpu/activation_quant.h"
#include "backend/cpu/hadamard.h"
#include "backend/cpu/linear.h"
#include "backend/cuda/exact_weight.h"
#include "backend/cuda/ops/ops.h"
#include "cuda_test_support.h"
#include "model/mhc.h"
#include "model/moe.h"
#include "model/norms.h"
#include "model/rope.h"

namespace fp4serve {
namespace {

using namespace cuda_testing;

std::mt19937 fresh_rng() { return std::mt19937(std::random_device{}()); }

struct LinearCase {
  WeightEncoding encoding;
  int64_t n, k;
};

// y = x W^T: the CPU's cpu::linear against ops::linear_exact, after the same activation
// quantization (ops::fp8_quantize_dequantize, checked bit-exact below). fp32 outputs: the
// two sums differ only in order, so by at most (K-1) * 2^-24 * sum |x_k w_k| each.
void check_linear(const LinearCase& c, int64_t rows, bool fp8_act, bool round, std::mt19937& rng) {
  const testing::TestWeight tw = testing::make_test_weight(c.encoding, c.n, c.k, rng());
  const LinearWeight& w = tw.weight;
  const std::vector<float> x = random_bf16(rng, static_cast<size_t>(rows * c.k));
  std::vector<float> want(static_cast<size_t>(rows * c.n));
  cpu::LinearJob job;
  job.weight = &w;
  job.x = x.data();
  job.rows = rows;
  job.y = want.data();
  job.act = fp8_act ? cpu::ActivationQuant::kFP8Block128 : cpu::ActivationQuant::kNone;
  job.round_bf16 = round;
  cpu::linear(job);

  const cuda::ExactDeviceWeight dw = cuda::ExactDeviceWeight::upload(w);
  cuda::DeviceBuffer dx = to_device(x);
  cuda::DeviceBuffer dq = poisoned(x.size());
  const float* input = dx.as<float>();
  if (fp8_act) {
    cuda::ops::fp8_quantize_dequantize(nullptr, dx.as<float>(), c.k, rows, c.k, 128, dq.as<float>(), c.k);
    input = dq.as<float>();
  }
  cuda::DeviceBuffer dy = poisoned(want.size());
  cuda::ops::ExactLinear lin;
  lin.w = dw.ref();
  lin.x = input;
  lin.x_stride = c.k;
  lin.rows = rows;
  lin.y = dy.as<float>();
  lin.y_stride = c.n;
  lin.row_begin = 0;
  lin.row_end = c.n;
  lin.round_bf16 = round;
  cuda::ops::linear_exact(nullptr, lin);
  const std::vector<float> got = from_device<float>(dy, want.size());

  double max_term_sum = 0.0;
  for (int64_t m = 0; m < rows; ++m)
    for (int64_t n = 0; n < c.n; ++n) {
      double s = 0.0;
      for (int64_t k = 0; k < c.k; ++k) s += std::fabs(x[m * c.k + k] * tw.values[n * c.k + k]);
      max_term_sum = std::max(max_term_sum, s);
    }
  const double reorder = static_cast<double>(c.k) * 0x1p-24 * max_term_sum;
  const std::string what = std::string(encoding_name(c.encoding)) + " " + std::to_string(c.n) + "x" +
                           std::to_string(c.k) + " rows " + std::to_string(rows) + (fp8_act ? " fp8-act" : "") +
                           (round ? " bf16-out" : " fp32-out");
  if (round) expect_bf16_close(got, want, reorder, what, 0.97);
  else expect_close(got, want, 0.0, reorder, 0.0, what);
}

TEST(CudaOps, ExactLinearMatchesCpuForEveryEncoding) {
  FP4SERVE_REQUIRE_GPU();
  std::mt19937 rng = fresh_rng();
  const std::vector<LinearCase> cases = {
      {WeightEncoding::kBF16, 24, 96},    {WeightEncoding::kBF16, 272, 256}, {WeightEncoding::kF16, 40, 128},
      {WeightEncoding::kF32, 24, 64},     {WeightEncoding::kFP8Block, 200, 256}, {WeightEncoding::kFP8Block, 24, 96},
      {WeightEncoding::kMXFP4, 48, 256},  {WeightEncoding::kNVFP4, 48, 256},  {WeightEncoding::kNVFP4, 24, 64},
  };
  for (const LinearCase& c : cases)
    for (const int64_t rows : {1, 3, 37})
      for (const bool round : {true, false}) {
        check_linear(c, rows, false, round, rng);
        if (c.k % 128 == 0 && c.encoding != WeightEncoding::kBF16) check_linear(c, rows, true, round, rng);
      }
}

TEST(CudaOps, GatheredLinearPicksEachRowsExpert) {
  FP4SERVE_REQUIRE_GPU();
  std::mt19937 rng = fresh_rng();
  const int64_t experts = 3, n = 32, k = 128, rows = 8, per_token = 2;
  std::vector<testing::TestWeight> weights;
  std::vector<cuda::ExactDeviceWeight> placed;
  std::vector<cuda::ops::ExactWeight> refs;
  for (int64_t e = 0; e < experts; ++e) {
    weights.push_back(testing::make_test_weight(WeightEncoding::kMXFP4, n, k, rng()));
    placed.push_back(cuda::ExactDeviceWeight::upload(weights.back().weight));
    refs.push_back(placed.back().ref());
  }
  const std::vector<int32_t> expert = {2, 0, 1, 1, 2, 0, 2, 1};  // assignment a reads token a / per_token
  const std::vector<float> x = random_bf16(rng, rows / per_token * k);
  std::vector<float> want(rows * n);
  for (int64_t a = 0; a < rows; ++a) {
    cpu::LinearJob job;
    job.weight = &weights[static_cast<size_t>(expert[a])].weight;
    job.x = x.data() + (a / per_token) * k;
    job.rows = 1;
    job.y = want.data() + a * n;
    job.round_bf16 = true;
    cpu::linear(job);
  }
  cuda::DeviceBuffer drefs = to_device(refs), dexpert = to_device(expert), dx = to_device(x);
  cuda::DeviceBuffer dy = poisoned(want.size());
  cuda::ops::linear_exact_gathered(nullptr, drefs.as<cuda::ops::ExactWeight>(), dexpert.as<int32_t>(), dx.as<float>(), k,
                                   per_token, rows, n, k, dy.as<float>(), true);
  expect_bf16_close(from_device<float>(dy, want.size()), want, 1e-3, "gathered MXFP4 experts", 0.95);
}

TEST(CudaOps, Fp8QuantizeDequantizeIsBitExact) {
  FP4SERVE_REQUIRE_GPU();
  std::mt19937 rng = fresh_rng();
  for (const int64_t block : {64, 128}) {
    const int64_t rows = 5, cols = 512;
    std::vector<float> x = random_f32(rng, rows * cols, 3.0f);
    x[7] = 0.0f;  // an all-but-zero block keeps the 1e-4 floor honest
    std::vector<float> want(x.size());
    for (int64_t r = 0; r < rows; ++r) cpu::fp8_quantize_dequantize(x.data() + r * cols, cols, block, want.data() + r * cols);
    cuda::DeviceBuffer dx = to_device(x), dy = poisoned(x.size());
    cuda::ops::fp8_quantize_dequantize(nullptr, dx.as<float>(), cols, rows, cols, block, dy.as<float>(), cols);
    expect_close(from_device<float>(dy, x.size()), want, 0.0, 0.0, 1.0, "fp8 qdq block " + std::to_string(block));
  }
}

TEST(CudaOps, EmbedMatchesCpuForEveryTableType) {
  FP4SERVE_REQUIRE_GPU();
  std::mt19937 rng = fresh_rng();
  const int64_t vocab = 50, dim = 96, copies = 4;
  const std::vector<int32_t> tokens = {3, 0, 49, 3, 17};
  const std::vector<float> values = random_f32(rng, vocab * dim);
  for (const auto type : {cuda::ops::EmbedTable::kBF16, cuda::ops::EmbedTable::kF16, cuda::ops::EmbedTable::kF32}) {
    std::vector<uint16_t> half(values.size());
    std::vector<float> want(tokens.size() * copies * dim);
    for (size_t i = 0; i < values.size(); ++i) {
      if (type == cuda::ops::EmbedTable::kBF16) half[i] = cpu::float_to_bf16(values[i]);
      if (type == cuda::ops::EmbedTable::kF16) half[i] = static_cast<uint16_t>(0x3C00 | (i % 1024));  // [1, 2)
    }
    for (size_t t = 0; t < tokens.size(); ++t)
      for (int64_t c = 0; c < copies; ++c)
        for (int64_t d = 0; d < dim; ++d) {
          const size_t src = static_cast<size_t>(tokens[t] * dim + d);
          const float v = type == cuda::ops::EmbedTable::kBF16  ? cpu::bf16_to_float(half[src])
                          : type == cuda::ops::EmbedTable::kF16 ? cpu::round_bf16(cpu::half_to_float(half[src]))
                                                                 : cpu::round_bf16(values[src]);
          want[(t * copies + c) * dim + d] = v;
        }
    cuda::DeviceBuffer table = type == cuda::ops::EmbedTable::kF32 ? to_device(values) : to_device(half);
    cuda::DeviceBuffer dt = to_device(tokens), out = poisoned(want.size());
    cuda::ops::embed(nullptr, table.data(), type, dim, dt.as<int32_t>(), static_cast<int64_t>(tokens.size()), copies,
                     out.as<float>());
    expect_close(from_device<float>(out, want.size()), want, 0.0, 0.0, 1.0, "embed table " + std::to_string(static_cast<int>(type)));
  }
}

TEST(CudaOps, RmsNormMatchesCpu) {
  FP4SERVE_REQUIRE_GPU();
  std::mt19937 rng = fresh_rng();
  for (const int64_t rows : {1, 33})
    for (const int64_t n : {64, 1000, 4096}) {
      const std::vector<float> x = random_bf16(rng, rows * n, 2.0f), w = random_bf16(rng, n);
      std::vector<float> want(x.size());
      for (int64_t r = 0; r < rows; ++r) rms_norm(x.data() + r * n, w.data(), n, 1e-6f, want.data() + r * n);
      cuda::DeviceBuffer dx = to_device(x), dw = to_device(w), dy = poisoned(x.size());
      cuda::ops::rms_norm(nullptr, dx.as<float>(), n, dw.as<float>(), rows, n, 1e-6f, dy.as<float>(), n);
      expect_bf16_close(from_device<float>(dy, x.size()), want, 0.0,
                        "rms_norm rows " + std::to_string(rows) + " n " + std::to_string(n));
    }
}

// The mHC site as the model runs it: fn as an fp32 linear, the rms scale, Sinkhorn,
// the collapse; then hc_post with a block output; and the head's collapse.
TEST(CudaOps, HyperConnectionsMatchCpu) {
  FP4SERVE_REQUIRE_GPU();
  std::mt19937 rng = fresh_rng();
  const int64_t hc = 4, D = 128, m = (2 + hc) * hc, iters = 20;
  const float eps = 1e-6f, hc_eps = 1e-6f;
  for (const int64_t rows : {1, 20}) {
    HyperConnectionWeights site;
    testing::TestWeight fn = testing::make_test_weight(WeightEncoding::kF32, m, hc * D, rng());
    site.fn = fn.weight;
    site.base = random_f32(rng, m, 0.5f);
    site.scale = {0.3f, 0.2f, 0.5f};
    const std::vector<float> X = random_bf16(rng, rows * hc * D);
    std::vector<float> mixes(rows * m), u(rows * D), pre(rows * hc), post(rows * hc), comb(rows * hc * hc);
    hc_pre(site, X.data(), rows, D, hc, iters, eps, hc_eps, mixes.data(), u.data(), HcMixing{hc, pre.data(), post.data(), comb.data()});

    const cuda::ExactDeviceWeight dfn = cuda::ExactDeviceWeight::upload(site.fn);
    cuda::DeviceBuffer dX = to_device(X), dbase = to_device(site.base), dscale = to_device(site.scale);
    cuda::DeviceBuffer dmix = poisoned(mixes.size()), du = poisoned(u.size()), dpre = poisoned(pre.size()),
                       dpost = poisoned(post.size()), dcomb = poisoned(comb.size());
    cuda::ops::ExactLinear lin{dfn.ref(), dX.as<float>(), hc * D, rows, dmix.as<float>(), m, 0, m, false};
    cuda::ops::linear_exact(nullptr, lin);
    cuda::ops::hc_scale_mixes(nullptr, dX.as<float>(), rows, hc * D, eps, dmix.as<float>(), m);
    cuda::ops::hc_sinkhorn(nullptr, dmix.as<float>(), dscale.as<float>(), dbase.as<float>(), rows, hc, iters, hc_eps,
                           dpre.as<float>(), dpost.as<float>(), dcomb.as<float>());
    cuda::ops::hc_collapse(nullptr, dX.as<float>(), dpre.as<float>(), rows, D, hc, du.as<float>());
    const std::string tag = " rows " + std::to_string(rows);
    // mixes: an fp32 dot of hc*D terms, reordered; the Sinkhorn factors follow within a
    // few fp32 ulps per iteration.
    expect_close(from_device<float>(dmix, mixes.size()), mixes, 1e-5, 1e-5, 0.0, "hc mixes" + tag);
    expect_close(from_device<float>(dpre, pre.size()), pre, 1e-5, 1e-6, 0.0, "hc pre" + tag);
    expect_close(from_device<float>(dpost, post.size()), post, 1e-5, 1e-6, 0.0, "hc post factors" + tag);
    expect_close(from_device<float>(dcomb, comb.size()), comb, 1e-4, 1e-6, 0.0, "hc comb" + tag);
    expect_bf16_close(from_device<float>(du, u.size()), u, 1e-3, "hc_pre collapse" + tag, 0.9);

    // hc_post from the CPU's own factors (so only the expansion is compared).
    const std::vector<float> y = random_bf16(rng, rows * D);
    std::vector<float> Xp = X;
    hc_post(y.data(), Xp.data(), rows, D, HcMixing{hc, pre.data(), post.data(), comb.data()});
    cuda::DeviceBuffer dX2 = to_device(X), dy = to_device(y), dpost2 = to_device(post), dcomb2 = to_device(comb);
    cuda::ops::hc_post(nullptr, dy.as<float>(), dX2.as<float>(), rows, D, hc, dpost2.as<float>(), dcomb2.as<float>());
    expect_bf16_close(from_device<float>(dX2, Xp.size()), Xp, 1e-4, "hc_post" + tag);

    // The head: hc weights only.
    HyperConnectionWeights head;
    testing::TestWeight hfn = testing::make_test_weight(WeightEncoding::kBF16, hc, hc * D, rng());
    head.fn = hfn.weight;
    head.base = random_f32(rng, hc, 0.5f);
    head.scale = {0.4f};
    std::vector<float> hm(rows * hc), hp(rows * hc), hy(rows * D);
    hc_head(head, X.data(), rows, D, hc, eps, hc_eps, hm.data(), hp.data(), hy.data());
    const cuda::ExactDeviceWeight dh = cuda::ExactDeviceWeight::upload(head.fn);
    cuda::DeviceBuffer dhb = to_device(head.base), dhs = to_device(head.scale), dhm = poisoned(hm.size()),
                       dhp = poisoned(hp.size()), dhy = poisoned(hy.size());
    cuda::ops::linear_exact(nullptr, {dh.ref(), dX.as<float>(), hc * D, rows, dhm.as<float>(), hc, 0, hc, false});
    cuda::ops::hc_scale_mixes(nullptr, dX.as<float>(), rows, hc * D, eps, dhm.as<float>(), hc);
    cuda::ops::hc_head_weights(nullptr, dhm.as<float>(), dhs.as<float>(), dhb.as<float>(), rows, hc, hc_eps, dhp.as<float>());
    cuda::ops::hc_collapse(nullptr, dX.as<float>(), dhp.as<float>(), rows, D, hc, dhy.as<float>());
    expect_bf16_close(from_device<float>(dhy, hy.size()), hy, 1e-3, "hc_head" + tag, 0.95);
  }
}

// q heads, the kv row and the indexer heads of each row, with and without the QAT
// simulation; cos/sin from the CPU's RopeTable so that only the per-row work is compared
// here (rope_angles is checked against the same table below).
TEST(CudaOps, AttentionRowPreparationMatchesCpu) {
  FP4SERVE_REQUIRE_GPU();
  std::mt19937 rng = fresh_rng();
  const int64_t heads = 3, hd = 128, rd = 64, ih = 2, ihd = 64;
  YarnConfig yarn;
  yarn.factor = 16.0;
  yarn.original_max_position = 4096;
  yarn.beta_fast = 32;
  yarn.beta_slow = 1;
  const RopeTable rope(rd, 160000.0, &yarn);
  for (const bool qat : {false, true})
    for (const int64_t rows : {1, 19}) {
      std::vector<int64_t> positions(rows);
      for (int64_t t = 0; t < rows; ++t) positions[t] = 1000 * t + 7;
      std::vector<float> cos(rows * rd / 2), sin(rows * rd / 2);
      for (int64_t t = 0; t < rows; ++t) rope.angles(positions[t], cos.data() + t * rd / 2, sin.data() + t * rd / 2);
      std::vector<float> q = random_bf16(rng, rows * heads * hd, 3.0f), kv = random_bf16(rng, rows * hd, 3.0f),
                         iq = random_bf16(rng, rows * ih * ihd, 3.0f), kv_norm = random_bf16(rng, hd);
      std::vector<float> wq = q, wkv = kv, wiq = iq;
      for (int64_t t = 0; t < rows; ++t) {
        const float* c = cos.data() + t * rd / 2;
        const float* s = sin.data() + t * rd / 2;
        for (int64_t h = 0; h < heads; ++h) {
          float* v = wq.data() + (t * heads + h) * hd;
          head_rms_norm_bf16(v, hd, 1e-6f);
          rope.rotate(v + hd - rd, c, s, false);
        }
        float* k = wkv.data() + t * hd;
        rms_norm(k, kv_norm.data(), hd, 1e-6f, k);
        rope.rotate(k + hd - rd, c, s, false);
        if (qat) cpu::fp8_quantize_dequantize(k, hd - rd, 64, k);
        for (int64_t h = 0; h < ih; ++h) {
          float* v = wiq.data() + (t * ih + h) * ihd;
          rope.rotate(v + ihd - rd, c, s, false);
          if (qat) {
            cpu::hadamard_rotate(v, ihd);
            cpu::fp4_quantize_dequantize(v, ihd, 32, v);
          }
        }
      }
      cuda::DeviceBuffer dq = to_device(q), dkv = to_device(kv), diq = to_device(iq), dn = to_device(kv_norm),
                         dc = to_device(cos), ds = to_device(sin);
      cuda::ops::AttentionPrep p;
      p.q = dq.as<float>();
      p.heads = heads, p.hd = hd, p.rd = rd;
      p.kv = dkv.as<float>();
      p.kv_norm = dn.as<float>();
      p.index_q = diq.as<float>();
      p.index_heads = ih, p.index_hd = ihd;
      p.cos = dc.as<float>(), p.sin = ds.as<float>();
      p.rows = rows;
      p.qat = qat;
      cuda::ops::attention_prep(nullptr, p);
      const std::string tag = std::string(qat ? " qat" : "") + " rows " + std::to_string(rows);
      expect_bf16_close(from_device<float>(dq, q.size()), wq, 1e-3, "q heads" + tag);
      // Under QAT a one-step bf16 difference before the rounding can move an element to the
      // next E4M3 / E2M1 code (up to a whole code step, or a block's scale): the bound is
      // then loose (one unit of the values' scale) and the bit-identical share carries the check.
      expect_close(from_device<float>(dkv, kv.size()), wkv, qat ? 1.0 : 0x1p-7, qat ? 1.0 : 1e-3, 0.97, "kv" + tag);
      expect_close(from_device<float>(diq, iq.size()), wiq, qat ? 1.0 : 0x1p-7, qat ? 1.0 : 1e-3, 0.97, "indexer q" + tag);

      std::vector<float> freqs = rope.frequencies();
      cuda::DeviceBuffer df = to_device(freqs), dp = to_device(positions), gc = poisoned(cos.size()), gs = poisoned(sin.size());
      cuda::ops::rope_angles(nullptr, df.as<float>(), rd, dp.as<int64_t>(), rows, gc.as<float>(), gs.as<float>());
      // cosf/sinf against glibc: both within 2 ulps of the true value of the same fp32 angle.
      expect_close(from_device<float>(gc, cos.size()), cos, 1e-6, 1e-7, 0.0, "rope cos" + tag);
      expect_close(from_device<float>(gs, sin.size()), sin, 1e-6, 1e-7, 0.0, "rope sin" + tag);
    }
}

TEST(CudaOps, MoeRoutingSwigluAndCombineMatchCpu) {
  FP4SERVE_REQUIRE_GPU();
  std::mt19937 rng = fresh_rng();
  const int64_t experts = 64, k = 6, vocab = 40, dim = 96;
  for (const bool hash : {false, true})
    for (const int64_t rows : {1, 25}) {
      const std::vector<float> logits = random_f32(rng, rows * experts, 2.0f), bias = random_f32(rng, experts, 0.1f);
      std::vector<int32_t> tokens(rows), tid2eid(vocab * k);
      for (auto& t : tokens) t = static_cast<int32_t>(rng() % vocab);
      for (auto& e : tid2eid) e = static_cast<int32_t>(rng() % experts);
      std::vector<int32_t> want_sel(rows * k);
      std::vector<float> want_w(rows * k);
      for (int64_t t = 0; t < rows; ++t)
        route_token(logits.data() + t * experts, experts, k, bias.data(), hash ? tid2eid.data() + tokens[t] * k : nullptr,
                    2.5f, want_sel.data() + t * k, want_w.data() + t * k);
      cuda::DeviceBuffer dl = to_device(logits), db = to_device(bias), dt = to_device(tokens), dh = to_device(tid2eid);
      cuda::DeviceBuffer dsel = to_device(std::vector<int32_t>(rows * k, -1)), dw = poisoned(rows * k);
      cuda::ops::moe_route(nullptr, dl.as<float>(), rows, experts, k, db.as<float>(), hash ? dh.as<int32_t>() : nullptr,
                           dt.as<int32_t>(), 2.5f, dsel.as<int32_t>(), dw.as<float>());
      const std::string tag = std::string(hash ? " hash" : " top-k") + " rows " + std::to_string(rows);
      EXPECT_EQ(from_device<int32_t>(dsel, want_sel.size()), want_sel) << "selected experts" << tag;
      expect_close(from_device<float>(dw, want_w.size()), want_w, 1e-5, 0.0, 0.0, "route weights" + tag);

      // SwiGLU with the routing weight, then the combine in ascending expert id.
      const int64_t width = 80;
      const std::vector<float> g = random_bf16(rng, rows * k * width, 4.0f), u = random_bf16(rng, rows * k * width, 4.0f);
      std::vector<float> want_mid(g.size());
      const float limit = 7.0f;
      for (size_t i = 0; i < g.size(); ++i) {
        const float gg = std::min(g[i], limit), uu = std::clamp(u[i], -limit, limit);
        want_mid[i] = cpu::round_bf16(want_w[i / width] * (gg / (1.0f + std::exp(-gg)) * uu));
      }
      cuda::DeviceBuffer dg = to_device(g), du = to_device(u), dmid = poisoned(g.size()), dwant_w = to_device(want_w);
      cuda::ops::swiglu(nullptr, dg.as<float>(), du.as<float>(), dwant_w.as<float>(), rows * k, width, limit, dmid.as<float>());
      expect_bf16_close(from_device<float>(dmid, g.size()), want_mid, 1e-6, "swiglu" + tag);

      const std::vector<float> down = random_bf16(rng, rows * k * dim), shared = random_bf16(rng, rows * dim);
      std::vector<float> want_out(rows * dim);
      for (int64_t t = 0; t < rows; ++t) {
        std::vector<int64_t> order(k);
        for (int64_t i = 0; i < k; ++i) order[i] = i;
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return want_sel[t * k + a] < want_sel[t * k + b]; });
        for (int64_t d = 0; d < dim; ++d) {
          float acc = 0.0f;
          for (int64_t i : order) acc += down[(t * k + i) * dim + d];
          want_out[t * dim + d] = cpu::round_bf16(acc + shared[t * dim + d]);
        }
      }
      cuda::DeviceBuffer ddown = to_device(down), dshared = to_device(shared), dout = poisoned(want_out.size());
      cuda::DeviceBuffer dsel_want = to_device(want_sel);
      cuda::ops::moe_combine(nullptr, ddown.as<float>(), dshared.as<float>(), dsel_want.as<int32_t>(), rows, k, dim, dout.as<float>());
      expect_close(from_device<float>(dout, want_out.size()), want_out, 0.0, 0.0, 1.0, "combine" + tag);
    }
}

}  // namespace
}  // namespace fp4serve
#endif
