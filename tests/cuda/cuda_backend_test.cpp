// The CUDA backend against the CPU backend through backend/backend.h: the same weights
// placed on both, the same inputs, every op compared (linears of every encoding and
// policy, mHC, norms, embedding, attention heads and the stateful attention over
// several steps of mixed prefill and decode rows in two sequences, MoE with learned and
// hash routing). Tolerances as in cuda_test_support.h: bf16 results agree but for
// rounding-boundary cases one bf16 step apart.
#ifdef FP4SERVE_HAVE_CUDA
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <memory>
#include <random>
#include <vector>

#include "../backend_cpu/test_weights.h"
#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "cuda_test_support.h"

namespace fp4serve {
namespace {

using namespace cuda_testing;

// One array on both backends: the CPU backend reads host memory, the GPU its own copy.
template <typename T>
struct Twin {
  std::vector<T> host;
  ::fp4serve::DeviceBuffer device;
  T* cpu() { return host.data(); }
  T* gpu() { return device.as<T>(); }
};

class BackendPair {
 public:
  BackendPair() : cpu_(make_backend(DeviceKind::kCpu)), gpu_(make_cuda_backend()) {}
  Backend& cpu() { return *cpu_; }
  Backend& gpu() { return *gpu_; }

  template <typename T>
  Twin<T>& twin(std::vector<T> values) {
    auto& t = *static_cast<Twin<T>*>(store(std::make_shared<Twin<T>>()));
    t.host = std::move(values);
    t.device = gpu_->allocate(t.host.size() * sizeof(T) + sizeof(T));
    if (!t.host.empty()) gpu_->copy_to_device(t.device.data(), t.host.data(), t.host.size() * sizeof(T));
    return t;
  }
  template <typename T>
  std::vector<T> gpu_values(Twin<T>& t) {
    std::vector<T> v(t.host.size());
    gpu_->copy_to_host(v.data(), t.gpu(), v.size() * sizeof(T));
    return v;
  }
  void place(const LinearWeight& w) {
    cpu_->place(w);
    gpu_->place(w);
  }
  // Small parameters: the CPU's own pointer and the GPU's placed copy. The CPU backend views
  // what it is given (backend.h: placed host objects outlive the backend), so the pair keeps
  // the values.
  std::pair<const float*, const float*> place(std::vector<float> v) {
    auto& kept = *static_cast<std::vector<float>*>(store(std::make_shared<std::vector<float>>(std::move(v))));
    return {cpu_->place(kept), gpu_->place(kept)};
  }

 private:
  void* store(std::shared_ptr<void> p) {
    keep_.push_back(p);
    return p.get();
  }
  std::unique_ptr<Backend> cpu_, gpu_;
  std::deque<std::shared_ptr<void>> keep_;
};

std::mt19937 fresh_rng() { return std::mt19937(std::random_device{}()); }

TEST(CudaBackend, LinearJobsMatchTheCpuBackend) {
  FP4SERVE_REQUIRE_GPU();
  std::mt19937 rng = fresh_rng();
  BackendPair b;
  std::deque<testing::TestWeight> weights;
  for (const auto& [e, n, k] : std::vector<std::tuple<WeightEncoding, int64_t, int64_t>>{
           {WeightEncoding::kMXFP4, 256, 256}, {WeightEncoding::kNVFP4, 48, 128}, {WeightEncoding::kBF16, 24, 96},
           {WeightEncoding::kF32, 24, 64}, {WeightEncoding::kFP8Block, 200, 256}, {WeightEncoding::kF16, 32, 128},
           // Shapes the Hopper GEMMs take (K % 128, N % 16): the backend's fast path.
           {WeightEncoding::kFP8Block, 256, 384}, {WeightEncoding::kBF16, 64, 256}}) {
    weights.push_back(testing::make_test_weight(e, n, k, rng()));
    b.place(weights.back().weight);
  }
  for (const int64_t rows : {1, 20}) {
    for (const testing::TestWeight& tw : weights) {
      const LinearWeight& w = tw.weight;
      for (const bool fp8 : {false, true}) {
        if (fp8 && w.in_features % 128 != 0) continue;
        Twin<float>& x = b.twin(random_bf16(rng, rows * w.in_features));
        Twin<float>& y = b.twin(std::vector<float>(rows * w.out_features, std::nanf("")));
        LinearJob j;
        j.weight = &w;
        j.rows = rows;
        j.act = fp8 ? ActivationQuant::kFP8Block128 : ActivationQuant::kNone;
        j.round_bf16 = w.encoding != WeightEncoding::kF32;
        j.x = x.cpu(), j.y = y.cpu();
        b.cpu().linear(std::span(&j, 1));
        j.x = x.gpu(), j.y = y.gpu();
        b.gpu().linear(std::span(&j, 1));
        const std::string what = std::string(encoding_name(w.encoding)) + (fp8 ? " fp8-act" : "") + " rows " + std::to_string(rows);
        if (j.round_bf16) expect_bf16_close(b.gpu_values(y), y.host, 1e-3, what, 0.95);
        else expect_close(b.gpu_values(y), y.host, 1e-5, 1e-4, 0.0, what);
      }
    }
    // wo_a's form: groups of output rows, each over its slice of the input row.
    const LinearWeight& w = weights[0].weight;  // [256, 256] as 2 groups of 128 outputs over 128 inputs each
    Twin<float>& x = b.twin(random_bf16(rng, rows * 512));
    Twin<float>& y = b.twin(std::vector<float>(rows * 256, std::nanf("")));
    LinearJob g[2];
    for (int i = 0; i < 2; ++i) {
      g[i].weight = &w, g[i].rows = rows, g[i].x_stride = 512, g[i].y_stride = 256, g[i].row_begin = 128 * i,
      g[i].row_end = 128 * (i + 1), g[i].round_bf16 = true;
    }
    for (int i = 0; i < 2; ++i) g[i].x = x.cpu() + 256 * i, g[i].y = y.cpu() + 128 * i;
    b.cpu().linear(g);
    for (int i = 0; i < 2; ++i) g[i].x = x.gpu() + 256 * i, g[i].y = y.gpu() + 128 * i;
    b.gpu().linear(g);
    expect_bf16_close(b.gpu_values(y), y.host, 1e-3, "grouped rows " + std::to_string(rows), 0.95);
  }
}

TEST(CudaBackend, HyperConnectionsNormsAndEmbeddingMatchTheCpuBackend) {
  FP4SERVE_REQUIRE_GPU();
  std::mt19937 rng = fresh_rng();
  BackendPair b;
  const int64_t hc = 4, D = 256, m = (2 + hc) * hc, vocab = 64;
  testing::TestWeight fn = testing::make_test_weight(WeightEncoding::kF32, m, hc * D, rng());
  testing::TestWeight head_fn = testing::make_test_weight(WeightEncoding::kF32, hc, hc * D, rng());
  b.place(fn.weight);
  b.place(head_fn.weight);
  const auto base = b.place(random_f32(rng, m, 0.5f)), scale = b.place(std::vector<float>{0.3f, 0.2f, 0.5f});
  const auto head_base = b.place(random_f32(rng, hc, 0.5f)), head_scale = b.place(std::vector<float>{0.4f});
  const auto norm_w = b.place(random_bf16(rng, D));
  TensorView table = make_owned_tensor(DType::BF16, {vocab, D}, "embed");
  for (int64_t i = 0; i < vocab * D; ++i)
    reinterpret_cast<uint16_t*>(mutable_data(table))[i] = encode_bf16(std::normal_distribution<float>()(rng));
  const void* table_cpu = b.cpu().place(table);
  const void* table_gpu = b.gpu().place(table);
  for (const int64_t rows : {1, 21}) {
    std::vector<int32_t> tok(rows);
    for (auto& t : tok) t = static_cast<int32_t>(rng() % vocab);
    Twin<int32_t>& tokens = b.twin(tok);
    Twin<float>& X = b.twin(std::vector<float>(rows * hc * D, std::nanf("")));
    EmbedParams e{nullptr, DType::BF16, vocab, D, hc, nullptr, rows, nullptr};
    e.table = table_cpu, e.tokens = tokens.cpu(), e.out = X.cpu();
    b.cpu().embed(e);
    e.table = table_gpu, e.tokens = tokens.gpu(), e.out = X.gpu();
    b.gpu().embed(e);
    const std::string tag = " rows " + std::to_string(rows);
    expect_close(b.gpu_values(X), X.host, 0.0, 0.0, 1.0, "embed" + tag);
    // Make the streams differ (the embedding repeats one row), on both sides alike.
    X.host = random_bf16(rng, rows * hc * D);
    b.gpu().copy_to_device(X.gpu(), X.host.data(), X.host.size() * sizeof(float));

    Twin<float>&mixes = b.twin(std::vector<float>(rows * m)), &u = b.twin(std::vector<float>(rows * D)),
                &pre = b.twin(std::vector<float>(rows * hc)), &post = b.twin(std::vector<float>(rows * hc)),
                &comb = b.twin(std::vector<float>(rows * hc * hc));
    HcPreParams p;
    p.rows = rows, p.dim = D, p.hc = hc, p.sinkhorn_iters = 20;
    p.site = {&fn.weight, base.first, scale.first};
    p.X = X.cpu(), p.mixes = mixes.cpu(), p.u = u.cpu(), p.pre = pre.cpu(), p.post = post.cpu(), p.comb = comb.cpu();
    b.cpu().hc_pre(p);
    p.site = {&fn.weight, base.second, scale.second};
    p.X = X.gpu(), p.mixes = mixes.gpu(), p.u = u.gpu(), p.pre = pre.gpu(), p.post = post.gpu(), p.comb = comb.gpu();
    b.gpu().hc_pre(p);
    expect_bf16_close(b.gpu_values(u), u.host, 1e-3, "hc_pre u" + tag, 0.9);
    expect_close(b.gpu_values(comb), comb.host, 1e-4, 1e-6, 0.0, "hc_pre comb" + tag);

    // rms_norm on u, then hc_post of the normed value (each from the CPU's own inputs).
    Twin<float>& y = b.twin(std::vector<float>(rows * D));
    b.gpu().copy_to_device(u.gpu(), u.host.data(), u.host.size() * sizeof(float));
    RmsNormParams n{rows, D, 1e-6f, u.cpu(), norm_w.first, y.cpu()};
    b.cpu().rms_norm(n);
    n.x = u.gpu(), n.weight = norm_w.second, n.y = y.gpu();
    b.gpu().rms_norm(n);
    expect_bf16_close(b.gpu_values(y), y.host, 0.0, "rms_norm" + tag);
    b.gpu().copy_to_device(y.gpu(), y.host.data(), y.host.size() * sizeof(float));
    b.gpu().copy_to_device(post.gpu(), post.host.data(), post.host.size() * sizeof(float));
    b.gpu().copy_to_device(comb.gpu(), comb.host.data(), comb.host.size() * sizeof(float));
    HcPostParams q{rows, D, hc, y.cpu(), X.cpu(), post.cpu(), comb.cpu()};
    b.cpu().hc_post(q);
    q = {rows, D, hc, y.gpu(), X.gpu(), post.gpu(), comb.gpu()};
    b.gpu().hc_post(q);
    expect_bf16_close(b.gpu_values(X), X.host, 1e-4, "hc_post" + tag);

    AddToStreamsParams a{rows, D, hc, y.cpu(), X.cpu()};
    b.gpu().copy_to_device(X.gpu(), X.host.data(), X.host.size() * sizeof(float));
    b.cpu().add_to_streams(a);
    a.e = y.gpu(), a.X = X.gpu();
    b.gpu().add_to_streams(a);
    expect_close(b.gpu_values(X), X.host, 0.0, 0.0, 1.0, "add_to_streams" + tag);

    // The head over the odd rows only.
    std::vector<int64_t> ids;
    for (int64_t r = 0; r < rows; r += 2) ids.push_back(r);
    Twin<int64_t>& row_ids = b.twin(ids);
    Twin<float>& hy = b.twin(std::vector<float>(ids.size() * D));
    HcHeadParams h;
    h.rows = static_cast<int64_t>(ids.size()), h.dim = D, h.hc = hc;
    h.site = {&head_fn.weight, head_base.first, head_scale.first};
    h.X = X.cpu(), h.row_ids = row_ids.cpu(), h.y = hy.cpu();
    b.cpu().hc_head(h);
    h.site = {&head_fn.weight, head_base.second, head_scale.second};
    h.X = X.gpu(), h.row_ids = row_ids.gpu(), h.y = hy.gpu();
    b.gpu().hc_head(h);
    expect_bf16_close(b.gpu_values(hy), hy.host, 1e-3, "hc_head" + tag, 0.95);
  }
}


// One attention layer over four steps of two sequences (prefill chunks and decode rows
// mixed), chained: attention_heads, then attention_sequences with the state in slots
// that both backends keep, as StatePool fills them (kv 0, score -inf).
void check_attention_layer(int64_t ratio, bool qat, std::mt19937& rng) {
  BackendPair b;
  const int64_t heads = 2, hd = 128, rd = 64, W = 8, ih = 2, ihd = 64, topk = 3, reserve = 64;
  const bool indexer = ratio == 4;
  const int64_t coff = ratio == 4 ? 2 : 1;
  // Slot layout: ring, then the main compressor (kv, score, entries), then the indexer's.
  AttentionStateLayout layout;
  int64_t at = W * hd;
  auto lay = [&](CompressorStateLayout& c, int64_t dim) {
    const int64_t cells = coff * ratio * coff * dim;
    c = {at, at + cells, at + 2 * cells, reserve / ratio + 1};
    at += 2 * cells + c.capacity * dim;
  };
  if (ratio > 0) lay(layout.compressor, hd);
  if (indexer) lay(layout.index_compressor, ihd);
  const int64_t slot_floats = at;
  std::vector<float> fresh(slot_floats, 0.0f);
  for (const CompressorStateLayout* c : {&layout.compressor, &layout.index_compressor})
    if (c->capacity > 0) std::fill(fresh.begin() + c->score, fresh.begin() + c->entries, -INFINITY);
  Twin<float>& slot0 = b.twin(fresh);
  Twin<float>& slot1 = b.twin(fresh);

  std::vector<float> freqs(rd / 2);
  for (int64_t i = 0; i < rd / 2; ++i) freqs[i] = 1.0f / std::pow(160000.0f, static_cast<float>(2 * i) / rd);
  const auto f = b.place(freqs), sink = b.place(random_f32(rng, heads)), kv_norm = b.place(random_bf16(rng, hd));
  const auto ape = b.place(random_f32(rng, ratio > 0 ? ratio * coff * hd : 1, 0.5f)), cnorm = b.place(random_bf16(rng, hd));
  const auto iape = b.place(random_f32(rng, indexer ? ratio * coff * ihd : 1, 0.5f)), inorm = b.place(random_bf16(rng, ihd));

  const std::vector<std::vector<int64_t>> chunks = {{5, 1, 9, 1}, {1, 12, 1, 3}};
  int64_t pos[2] = {0, 0};
  for (size_t step = 0; step < chunks[0].size(); ++step) {
    std::vector<SequenceSlice> cpu_slices, gpu_slices;
    std::vector<int64_t> positions;
    int64_t rows = 0;
    for (int s = 0; s < 2; ++s) {
      const int64_t n = chunks[s][step];
      cpu_slices.push_back({rows, rows + n, pos[s], (s ? slot1 : slot0).cpu()});
      gpu_slices.push_back({rows, rows + n, pos[s], (s ? slot1 : slot0).gpu()});
      for (int64_t i = 0; i < n; ++i) positions.push_back(pos[s] + i);
      rows += n;
      pos[s] += n;
    }
    Twin<SequenceSlice>& dslices = b.twin(gpu_slices);
    Twin<int64_t>& dpos = b.twin(positions);
    Twin<int32_t>& tokens = b.twin(std::vector<int32_t>(rows, 1));
    Twin<float>&q = b.twin(random_bf16(rng, rows * heads * hd)), &kv = b.twin(random_bf16(rng, rows * hd)),
               &iq = b.twin(random_bf16(rng, rows * ih * ihd)), &iw = b.twin(random_bf16(rng, rows * ih, 0.3f)),
               &a = b.twin(random_f32(rng, rows * coff * hd)), &z = b.twin(random_f32(rng, rows * coff * hd)),
               &ia = b.twin(random_f32(rng, rows * coff * ihd)), &iz = b.twin(random_f32(rng, rows * coff * ihd)),
               &out = b.twin(std::vector<float>(rows * heads * hd, std::nanf("")));
    const int64_t max_position = *std::max_element(positions.begin(), positions.end());

    for (const bool on_gpu : {false, true}) {
      Backend& be = on_gpu ? b.gpu() : b.cpu();
      auto pick = [&](Twin<float>& t) { return on_gpu ? t.gpu() : t.cpu(); };
      auto param = [&](const std::pair<const float*, const float*>& v) { return on_gpu ? v.second : v.first; };
      AttentionHeadsParams h;
      h.rows = rows, h.heads = heads, h.head_dim = hd, h.rope_dim = rd, h.qat_simulation = qat;
      h.positions = on_gpu ? dpos.gpu() : dpos.cpu();
      h.rope_freqs = param(f), h.q = pick(q), h.kv = pick(kv), h.kv_norm = param(kv_norm);
      if (indexer) h.index_heads = ih, h.index_head_dim = ihd, h.index_q = pick(iq), h.index_weights = pick(iw);
      be.attention_heads(h);
      AttentionSequencesParams p;
      p.heads = heads, p.head_dim = hd, p.rope_dim = rd, p.window = W, p.qat_simulation = qat;
      p.softmax_scale = 1.0f / std::sqrt(static_cast<float>(hd));
      p.rope_freqs = param(f), p.sink = param(sink), p.q = pick(q), p.kv = pick(kv), p.window_offset = 0;
      if (ratio > 0) p.compressor = {ratio, hd, ratio == 4, param(ape), param(cnorm), pick(a), pick(z), layout.compressor};
      if (indexer) {
        p.index_compressor = {ratio, ihd, true, param(iape), param(inorm), pick(ia), pick(iz), layout.index_compressor};
        p.index_heads = ih, p.index_head_dim = ihd, p.index_topk = topk, p.index_q = pick(iq), p.index_weights = pick(iw);
      }
      p.out = pick(out);
      StepRows sr;
      sr.rows = rows;
      sr.slices = on_gpu ? gpu_slices : cpu_slices;
      sr.device_slices = on_gpu ? dslices.gpu() : cpu_slices.data();
      sr.positions = on_gpu ? dpos.gpu() : dpos.cpu();
      sr.tokens = on_gpu ? tokens.gpu() : tokens.cpu();
      sr.max_position = max_position;
      be.attention_sequences(p, sr);
    }
    const std::string what = "attention ratio " + std::to_string(ratio) + (qat ? " qat" : "") + " step " + std::to_string(step);
    // Under QAT a kv element one bf16 step apart can land on another E4M3 code (2^-3
    // relative) before it enters every later score: a looser bound, fewer exact values.
    if (qat) expect_close(b.gpu_values(out), out.host, 0.05, 0.05, 0.7, what);
    else expect_bf16_close(b.gpu_values(out), out.host, 2e-3, what, 0.85);
  }
}

TEST(CudaBackend, AttentionOverMixedStepsMatchesTheCpuBackend) {
  FP4SERVE_REQUIRE_GPU();
  std::mt19937 rng = fresh_rng();
  for (const int64_t ratio : {0, 4, 8})
    for (const bool qat : {false, true}) check_attention_layer(ratio, qat, rng);
}

TEST(CudaBackend, MoeMatchesTheCpuBackend) {
  FP4SERVE_REQUIRE_GPU();
  std::mt19937 rng = fresh_rng();
  BackendPair b;
  const int64_t E = 16, k = 4, D = 128, I = 128, vocab = 32;
  std::deque<testing::TestWeight> w;
  auto weight = [&](WeightEncoding e, int64_t n, int64_t kk) {
    w.push_back(testing::make_test_weight(e, n, kk, rng()));
    b.place(w.back().weight);
    return &w.back().weight;
  };
  const LinearWeight* gate = weight(WeightEncoding::kBF16, E, D);
  std::vector<ExpertLinears> routed;
  for (int64_t e = 0; e < E; ++e)
    routed.push_back({weight(WeightEncoding::kMXFP4, I, D), weight(WeightEncoding::kMXFP4, D, I), weight(WeightEncoding::kMXFP4, I, D)});
  const ExpertLinears shared{weight(WeightEncoding::kBF16, I, D), weight(WeightEncoding::kBF16, D, I), weight(WeightEncoding::kBF16, I, D)};
  const auto bias = b.place(random_f32(rng, E, 0.1f));
  std::vector<int32_t> hash(vocab * k);
  for (auto& h : hash) h = static_cast<int32_t>(rng() % E);
  const int32_t* hash_cpu = b.cpu().place(hash);
  const int32_t* hash_gpu = b.gpu().place(hash);
  for (const bool hashed : {false, true})
    for (const bool fp8 : {false, true})
      for (const int64_t rows : {1, 20}) {
        std::vector<int32_t> tok(rows);
        for (auto& t : tok) t = static_cast<int32_t>(rng() % vocab);
        Twin<int32_t>& tokens = b.twin(tok);
        Twin<float>&x = b.twin(random_bf16(rng, rows * D)), &out = b.twin(std::vector<float>(rows * D, std::nanf("")));
        MoeParams p;
        p.rows = rows, p.dim = D, p.intermediate = I, p.experts = E, p.experts_per_token = k;
        p.route_scale = 1.5f, p.swiglu_limit = 10.0f;
        p.numerics.fp8_input_encodings = fp8 ? (1u << static_cast<unsigned>(WeightEncoding::kMXFP4)) : 0u;
        p.gate = gate, p.routed = routed, p.shared = shared;
        p.bias = hashed ? nullptr : bias.first, p.tid2eid = hashed ? hash_cpu : nullptr;
        p.x = x.cpu(), p.tokens = tokens.cpu(), p.out = out.cpu();
        b.cpu().moe(p);
        p.bias = hashed ? nullptr : bias.second, p.tid2eid = hashed ? hash_gpu : nullptr;
        p.x = x.gpu(), p.tokens = tokens.gpu(), p.out = out.gpu();
        b.gpu().moe(p);
        const std::string what = std::string("moe") + (hashed ? " hash" : " top-k") + (fp8 ? " fp8" : "") + " rows " +
                                 std::to_string(rows);
        expect_bf16_close(b.gpu_values(out), out.host, 5e-3, what, 0.85);
      }
}
}  // namespace
}  // namespace fp4serve
#endif
