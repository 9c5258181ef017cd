#include "parity_reference.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <thread>

#include "base/error.h"
#include "base/tensor.h"
#include "formats/activation_quantization.h"
#include "formats/number_formats.h"
#include "formats/weight_dequantization.h"

namespace fp4serve::parity {
namespace {

void fill_bytes(TensorView& t, Rng& rng, auto pick) {
  auto* out = reinterpret_cast<uint8_t*>(mutable_data(t));
  for (size_t i = 0; i < t.nbytes; ++i) out[i] = pick(rng);
}

// Runs body(first, last) over [0, count) on the machine's cores.
template <typename Body>
void parallel_rows(int64_t count, Body body) {
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(std::thread::hardware_concurrency(), count));
  std::vector<std::thread> pool;
  for (int64_t i = 0; i < threads; ++i) {
    pool.emplace_back([=] { body(count * i / threads, count * (i + 1) / threads); });
  }
  for (auto& th : pool) th.join();
}

double silu(double v) { return v / (1.0 + std::exp(-v)); }

}  // namespace

LinearWeight random_weight(WeightEncoding encoding, int64_t n, int64_t k, Rng& rng, ScaleRange scales,
                           std::string name) {
  LinearWeight w;
  w.encoding = encoding;
  w.out_features = n;
  w.in_features = k;
  w.name = std::move(name);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> e8m0(scales.lo, scales.hi);
  switch (encoding) {
    case WeightEncoding::kBF16: {
      w.weight = make_owned_tensor(DType::BF16, {n, k}, w.name);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      auto* out = reinterpret_cast<uint16_t*>(mutable_data(w.weight));
      for (int64_t i = 0; i < n * k; ++i) out[i] = encode_bf16(normal(rng));
      break;
    }
    case WeightEncoding::kFP8Block:
      w.weight = make_owned_tensor(DType::F8_E4M3, {n, k}, w.name);
      fill_bytes(w.weight, rng, [&](Rng& r) {
        int b;
        do b = byte(r);
        while ((b & 0x7F) == 0x7F);  // every E4M3 code but NaN
        return static_cast<uint8_t>(b);
      });
      w.scale = make_owned_tensor(DType::F8_E8M0, {(n + 127) / 128, (k + 127) / 128}, w.name + ".scale");
      fill_bytes(w.scale, rng, [&](Rng& r) { return static_cast<uint8_t>(e8m0(r)); });
      break;
    case WeightEncoding::kMXFP4:
      w.weight = make_owned_tensor(DType::U8, {n, k / 2}, w.name);
      fill_bytes(w.weight, rng, [&](Rng& r) { return static_cast<uint8_t>(byte(r)); });
      w.scale = make_owned_tensor(DType::F8_E8M0, {n, k / 32}, w.name + ".scale");
      fill_bytes(w.scale, rng, [&](Rng& r) { return static_cast<uint8_t>(e8m0(r)); });
      break;
    case WeightEncoding::kNVFP4: {
      w.weight = make_owned_tensor(DType::U8, {n, k / 2}, w.name);
      fill_bytes(w.weight, rng, [&](Rng& r) { return static_cast<uint8_t>(byte(r)); });
      w.scale = make_owned_tensor(DType::F8_E4M3, {n, k / 16}, w.name + ".weight_scale");
      std::uniform_int_distribution<int> positive(1, 0x7E);  // every positive finite E4M3 code
      fill_bytes(w.scale, rng, [&](Rng& r) { return static_cast<uint8_t>(positive(r)); });
      std::uniform_real_distribution<float> gs(1e-4f, 1e-2f);
      w.global_scale = gs(rng);
      break;
    }
    case WeightEncoding::kF16:
    case WeightEncoding::kF32:
      fail("parity: no random generator for {}", encoding_name(encoding));
  }
  return w;
}

std::vector<uint16_t> random_bf16(int64_t count, float sigma, Rng& rng) {
  std::normal_distribution<float> normal(0.0f, sigma);
  std::uniform_int_distribution<int> pos(0, 127);
  std::vector<uint16_t> out(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    float v = normal(rng);
    if (pos(rng) == 0) v *= 64.0f;
    out[i] = encode_bf16(v);
  }
  return out;
}

Fp8Activations quantize_reference(std::span<const uint16_t> x_bf16, int64_t m, int64_t k) {
  std::vector<float> x(x_bf16.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = decode_bf16(x_bf16[i]);
  Fp8Activations a;
  a.codes.resize(static_cast<size_t>(m * k));
  a.scales.resize(static_cast<size_t>(m * (k / 128)));
  quantize_activations_fp8(x, m, k, kFp8ActivationBlock, ActivationScale::kUe8m0, a.codes, a.scales);
  return a;
}

std::vector<double> decode_fp8_activations(const Fp8Activations& a, int64_t m, int64_t k) {
  std::vector<double> x(static_cast<size_t>(m * k));
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < k; ++c)
      x[r * k + c] = static_cast<double>(decode_e4m3(a.codes[r * k + c])) * a.scales[r * (k / 128) + c / 128];
  return x;
}

std::vector<double> decode_bf16_values(std::span<const uint16_t> x) {
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = fp4serve::decode_bf16(x[i]);
  return out;
}

std::vector<double> reference_gemm(const LinearWeight& w, std::span<const double> x, int64_t m, bool magnitudes) {
  const std::vector<float> wf = dequantize_to_f32(w);
  const int64_t n = w.out_features, k = w.in_features;
  std::vector<double> y(static_cast<size_t>(m * n));
  parallel_rows(n, [&](int64_t first, int64_t last) {
    for (int64_t j = first; j < last; ++j) {
      const float* wr = wf.data() + j * k;
      for (int64_t r = 0; r < m; ++r) {
        const double* xr = x.data() + r * k;
        double sum = 0.0;
        if (magnitudes) {
          for (int64_t c = 0; c < k; ++c) sum += std::fabs(xr[c] * static_cast<double>(wr[c]));
        } else {
          for (int64_t c = 0; c < k; ++c) sum += xr[c] * static_cast<double>(wr[c]);
        }
        y[r * n + j] = sum;
      }
    }
  });
  return y;
}

Comparison compare(std::span<const float> got, std::span<const double> ref, double bound,
                   std::span<const double> extra) {
  Comparison c;
  double err2 = 0.0, ref2 = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) ref2 += ref[i] * ref[i];
  const double rms = std::sqrt(ref2 / static_cast<double>(std::max<size_t>(1, ref.size())));
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(got[i])) {
      ++c.non_finite;
      continue;
    }
    const double e = std::fabs(static_cast<double>(got[i]) - ref[i]);
    err2 += e * e;
    const double allowed = std::ldexp(std::fabs(ref[i]), -8) + bound * rms + (extra.empty() ? 0.0 : extra[i]);
    c.worst = std::max(c.worst, allowed > 0 ? e / allowed : (e > 0 ? INFINITY : 0.0));
  }
  c.rel_l2 = ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
  return c;
}

std::vector<double> reference_moe(std::span<const LinearWeight> w1, std::span<const LinearWeight> w3,
                                  std::span<const LinearWeight> w2, const Fp8Activations& x, int64_t tokens,
                                  int64_t hidden, std::span<const int> expert_ids, std::span<const float> weights,
                                  int top_k, float swiglu_limit) {
  const int64_t inter = w1[0].out_features;
  const std::vector<double> xd = decode_fp8_activations(x, tokens, hidden);
  std::vector<double> y(static_cast<size_t>(tokens * hidden), 0.0);
  const auto bf16_round = [](double v) { return static_cast<double>(decode_bf16(encode_bf16(static_cast<float>(v)))); };
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<int> slots(top_k);
    for (int j = 0; j < top_k; ++j) slots[j] = j;
    std::sort(slots.begin(), slots.end(), [&](int a, int b) { return expert_ids[t * top_k + a] < expert_ids[t * top_k + b]; });
    const std::span<const double> xt(xd.data() + t * hidden, hidden);
    for (int j : slots) {
      const int e = expert_ids[t * top_k + j];
      const std::vector<double> g = reference_gemm(w1[e], xt, 1);
      const std::vector<double> u = reference_gemm(w3[e], xt, 1);
      std::vector<uint16_t> h(static_cast<size_t>(inter));
      for (int64_t i = 0; i < inter; ++i) {
        double gi = bf16_round(g[i]), ui = bf16_round(u[i]);
        if (swiglu_limit > 0) {
          gi = std::min<double>(gi, swiglu_limit);
          ui = std::clamp<double>(ui, -swiglu_limit, swiglu_limit);
        }
        h[i] = encode_bf16(static_cast<float>(silu(gi) * ui * weights[t * top_k + j]));
      }
      const Fp8Activations hq = quantize_reference(h, 1, inter);
      const std::vector<double> hd = decode_fp8_activations(hq, 1, inter);
      const std::vector<double> out = reference_gemm(w2[e], hd, 1);
      for (int64_t d = 0; d < hidden; ++d) y[t * hidden + d] += bf16_round(out[d]);
    }
  }
  return y;
}

}  // namespace fp4serve::parity
