// The stateful ops of attention on the GPU against the CPU: compressors fed in steps of
// mixed sizes (several sequences per step, prefill and decode rows) against the CPU's
// token-by-token ingest; the indexer's scores and top-k (ties included); attention with
// sinks over ring, step rows and compressed entries against a transcription of
// the CPU attention's formula; and the window ring's update.
//
// These call the CPU ops as src/model/ declares them before the backend seam; once the CPU
// backend (backend/cpu/cpu_backend.h) exists, cuda_backend_test.cpp compares the same ops
// through the Backend interface and this file compiles to nothing (port or drop it then).
#if defined(FP4SERVE_HAVE_CUDA) && !__has_include("backend/cpu/cpu_backend.h")
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "backend/cuda/ops/ops.h"
#include "cuda_test_support.h"
#include "model/compressor.h"
#include "model/indexer.h"
#include "model/rope.h"

namespace fp4serve {
namespace {

using namespace cuda_testing;

std::mt19937 fresh_rng() { return std::mt19937(std::random_device{}()); }

RopeTable yarn_rope(int64_t rd) {
  YarnConfig yarn;
  yarn.factor = 16.0;
  yarn.original_max_position = 4096;
  yarn.beta_fast = 32;
  yarn.beta_slow = 1;
  return RopeTable(rd, 160000.0, &yarn);
}

struct CompressorCase {
  int64_t ratio;
  bool overlap, indexer, qat;
};

void check_compressor(const CompressorCase& c, std::mt19937& rng) {
  const int64_t d = c.indexer ? 64 : 128, rd = 64, coff = c.overlap ? 2 : 1, width = coff * d;
  CompressorWeights w;
  w.ratio = c.ratio;
  w.dim = d;
  w.overlap = c.overlap;
  w.ape = random_f32(rng, c.ratio * width, 0.5f);
  w.norm = random_bf16(rng, d);
  const RopeTable rope = yarn_rope(rd);
  // Two sequences, stepped together in chunks of different sizes (1 = a decode row).
  const std::vector<std::vector<int64_t>> chunks = {{5, 1, 1, 9, 2, 17, 1, 3}, {1, 12, 3, 1, 1, 20, 4, 1}};
  const size_t S = chunks.size();
  std::vector<int64_t> total(S, 0);
  for (size_t s = 0; s < S; ++s) total[s] = std::accumulate(chunks[s].begin(), chunks[s].end(), int64_t{0});
  std::vector<std::vector<float>> a(S), z(S), want(S);
  for (size_t s = 0; s < S; ++s) {
    a[s] = random_f32(rng, total[s] * width);
    z[s] = random_f32(rng, total[s] * width);
    CompressorState st;
    st.reset(w, total[s] / c.ratio + 1);
    const CompressorContext ctx{&w, &rope, rd, 1e-6f, c.qat, c.indexer ? CompressorKind::kIndexer : CompressorKind::kMain};
    for (int64_t p = 0; p < total[s]; ++p) compressor_ingest(ctx, st, p, a[s].data() + p * width, z[s].data() + p * width);
    want[s] = st.entries;
  }

  // Device slots: kv, score, entries.
  const int64_t cells = coff * c.ratio * width, capacity = 64;
  cuda::ops::CompressorParams p;
  p.ratio = c.ratio, p.dim = d, p.overlap = c.overlap, p.indexer = c.indexer, p.qat = c.qat, p.rd = rd, p.eps = 1e-6f;
  p.state = {0, cells, 2 * cells};
  std::vector<float> fresh(static_cast<size_t>(2 * cells + capacity * d), std::nanf(""));
  std::fill(fresh.begin(), fresh.begin() + cells, 0.0f);
  std::fill(fresh.begin() + cells, fresh.begin() + 2 * cells, -INFINITY);
  std::vector<cuda::DeviceBuffer> slots;
  for (size_t s = 0; s < S; ++s) slots.push_back(to_device(fresh));
  cuda::DeviceBuffer ape = to_device(w.ape), norm = to_device(w.norm), freqs = to_device(rope.frequencies());
  p.ape = ape.as<float>(), p.norm = norm.as<float>(), p.freqs = freqs.as<float>();

  std::vector<int64_t> pos(S, 0);
  for (size_t step = 0; step < chunks[0].size(); ++step) {
    std::vector<cuda::ops::StepRow> rows;
    std::vector<cuda::ops::StepRun> runs;
    std::vector<cuda::ops::EmittedEntry> emitted;
    std::vector<float> sa, sz;
    for (size_t s = 0; s < S; ++s) {
      const int64_t n = chunks[s][step], begin = static_cast<int64_t>(rows.size());
      runs.push_back({slots[s].as<float>(), begin, pos[s], pos[s] + n});
      for (int64_t i = 0; i < n; ++i) {
        const int64_t q = pos[s] + i;
        if ((q + 1) % c.ratio == 0)
          emitted.push_back({static_cast<int32_t>(rows.size()), static_cast<int32_t>((q + 1) / c.ratio - 1)});
        rows.push_back({slots[s].as<float>(), begin, pos[s], pos[s] + n, q});
      }
      sa.insert(sa.end(), a[s].begin() + pos[s] * width, a[s].begin() + (pos[s] + n) * width);
      sz.insert(sz.end(), z[s].begin() + pos[s] * width, z[s].begin() + (pos[s] + n) * width);
      pos[s] += n;
    }
    cuda::DeviceBuffer drows = to_device(rows), druns = to_device(runs), dem = to_device(emitted), da = to_device(sa),
                       dz = to_device(sz);
    cuda::ops::compressor_emit(nullptr, p, drows.as<cuda::ops::StepRow>(), da.as<float>(), dz.as<float>(),
                               dem.as<cuda::ops::EmittedEntry>(), static_cast<int64_t>(emitted.size()));
    cuda::ops::compressor_store(nullptr, p, druns.as<cuda::ops::StepRun>(), static_cast<int64_t>(runs.size()),
                                da.as<float>(), dz.as<float>());
    cuda::check_cuda(cudaDeviceSynchronize(), "compressor step");
  }
  for (size_t s = 0; s < S; ++s) {
    const std::vector<float> slot = from_device<float>(slots[s], fresh.size());
    const std::vector<float> got(slot.begin() + 2 * cells, slot.begin() + 2 * cells + static_cast<int64_t>(want[s].size()));
    const std::string what = std::string(c.indexer ? "indexer" : "main") + " compressor ratio " + std::to_string(c.ratio) +
                             (c.qat ? " qat" : "") + " sequence " + std::to_string(s);
    ASSERT_EQ(static_cast<int64_t>(want[s].size()), total[s] / c.ratio * d) << what;
    // Pooling sums exp() terms (expf against glibc: an ulp apart), then bf16; with QAT an
    // element near a code boundary may land one E4M3/E2M1 code away (bound: one unit).
    if (c.qat) expect_close(got, want[s], 1.0, 1.0, 0.95, what);
    else expect_bf16_close(got, want[s], 1e-3, what, 0.95);
  }
}

TEST(CudaOps, CompressorsMatchCpuIngestAcrossSteps) {
  FP4SERVE_REQUIRE_GPU();
  std::mt19937 rng = fresh_rng();
  const std::vector<CompressorCase> cases = {
      {4, true, false, false}, {4, true, false, true}, {4, true, true, true}, {8, false, false, false}, {8, false, false, true},
  };
  for (const CompressorCase& c : cases) check_compressor(c, rng);
}

TEST(CudaOps, IndexerScoresAndTopKMatchCpu) {
  FP4SERVE_REQUIRE_GPU();
  std::mt19937 rng = fresh_rng();
  const int64_t heads = 4, dim = 64, ratio = 4, topk = 5, capacity = 24;
  std::vector<float> entries = random_bf16(rng, capacity * dim);
  // Equal keys give equal scores: the lower index must come first.
  std::copy(entries.begin() + 5 * dim, entries.begin() + 6 * dim, entries.begin() + 9 * dim);
  std::copy(entries.begin() + 2 * dim, entries.begin() + 3 * dim, entries.begin() + 3 * dim);
  cuda::DeviceBuffer slot = to_device(entries);
  const std::vector<int64_t> positions = {0, 3, 10, 22, 50, 83, 95};
  const int64_t rows = static_cast<int64_t>(positions.size());
  std::vector<cuda::ops::StepRow> step;
  for (int64_t t = 0; t < rows; ++t) step.push_back({slot.as<float>(), 0, 0, 100, positions[t]});
  const std::vector<float> q = random_bf16(rng, rows * heads * dim), wts = random_bf16(rng, rows * heads, 0.2f);
  cuda::DeviceBuffer dstep = to_device(step), dq = to_device(q), dw = to_device(wts);
  cuda::DeviceBuffer scores = poisoned(rows * capacity), selected = to_device(std::vector<int32_t>(rows * topk, -7));
  cuda::ops::indexer_select(nullptr, 0, dstep.as<cuda::ops::StepRow>(), rows, dq.as<float>(), dw.as<float>(), heads, dim,
                            ratio, topk, capacity, scores.as<float>(), selected.as<int32_t>());
  const std::vector<float> got_scores = from_device<float>(scores, rows * capacity);
  const std::vector<int32_t> got_sel = from_device<int32_t>(selected, rows * topk);
  for (int64_t t = 0; t < rows; ++t) {
    const int64_t count = (positions[t] + 1) / ratio;
    std::vector<float> want(count);
    index_scores(q.data() + t * heads * dim, wts.data() + t * heads, heads, dim, entries.data(), count, want.data());
    const std::vector<float> got(got_scores.begin() + t * capacity, got_scores.begin() + t * capacity + count);
    expect_bf16_close(got, want, 1e-3, "index scores position " + std::to_string(positions[t]), 0.9);
    // The selection itself, exactly, from the GPU's own scores.
    std::vector<int32_t> want_sel;
    top_k(got.data(), count, topk, want_sel);
    want_sel.resize(topk, -1);
    const std::vector<int32_t> sel(got_sel.begin() + t * topk, got_sel.begin() + (t + 1) * topk);
    EXPECT_EQ(sel, want_sel) << "top-k at position " << positions[t];
  }
}

// One run of a step for the attention test.
struct Run {
  int64_t start, n;
};

void check_attention(int64_t ratio, bool with_selection, std::mt19937& rng) {
  const int64_t heads = 3, hd = 64, rd = 32, W = 8, topk = 3, capacity = 16;
  const RopeTable rope = yarn_rope(rd);
  const std::vector<Run> runs = {{13, 6}, {0, 3}, {40, 1}, {7, 20}};
  int64_t rows = 0;
  for (const Run& r : runs) rows += r.n;
  const int64_t window_off = 0, entries_off = W * hd;
  std::vector<std::vector<float>> slot_host;
  std::vector<cuda::DeviceBuffer> slots;
  for (size_t s = 0; s < runs.size(); ++s) {
    slot_host.push_back(random_bf16(rng, (W + capacity) * hd));
    slots.push_back(to_device(slot_host.back()));
  }
  const std::vector<float> q = random_bf16(rng, rows * heads * hd, 0.5f), kv = random_bf16(rng, rows * hd),
                           sink = random_f32(rng, heads);
  std::vector<cuda::ops::StepRow> step;
  std::vector<int32_t> selected(rows * topk, -1);
  std::vector<float> cos(rows * rd / 2), sin(rows * rd / 2);
  for (size_t s = 0; s < runs.size(); ++s)
    for (int64_t i = 0; i < runs[s].n; ++i) {
      const int64_t t = static_cast<int64_t>(step.size()), p = runs[s].start + i;
      step.push_back({slots[s].as<float>(), t - i, runs[s].start, runs[s].start + runs[s].n, p});
      rope.angles(p, cos.data() + t * rd / 2, sin.data() + t * rd / 2);
      const int64_t count = ratio ? (p + 1) / ratio : 0;
      std::vector<int32_t> order(count);
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), rng);
      for (int64_t j = 0; j < std::min(count, topk); ++j) selected[t * topk + j] = order[j];
    }
  // The reference: keys in the CPU's order, scores, softmax with the sink, inverse RoPE.
  std::vector<float> want(rows * heads * hd);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  for (int64_t t = 0; t < rows; ++t) {
    const cuda::ops::StepRow& r = step[t];
    const size_t s = static_cast<size_t>(std::find_if(slots.begin(), slots.end(), [&](const cuda::DeviceBuffer& b) {
                                           return b.as<float>() == r.slot;
                                         }) - slots.begin());
    std::vector<const float*> keys;
    for (int64_t k = std::max<int64_t>(0, r.position - W + 1); k <= r.position; ++k)
      keys.push_back(k >= r.start ? kv.data() + (r.row_begin + k - r.start) * hd : slot_host[s].data() + window_off + (k % W) * hd);
    const int64_t count = ratio ? (r.position + 1) / ratio : 0;
    const int64_t shown = with_selection ? std::min(count, topk) : count;
    for (int64_t j = 0; j < shown; ++j)
      keys.push_back(slot_host[s].data() + entries_off + (with_selection ? selected[t * topk + j] : j) * hd);
    for (int64_t h = 0; h < heads; ++h) {
      const float* qh = q.data() + (t * heads + h) * hd;
      std::vector<float> sc(keys.size());
      float m = -INFINITY;
      for (size_t j = 0; j < keys.size(); ++j) {
        float dot = 0.0f;
        for (int64_t i = 0; i < hd; ++i) dot += qh[i] * keys[j][i];
        m = std::max(m, sc[j] = dot * scale);
      }
      float den = 0.0f;
      std::vector<float> acc(hd, 0.0f);
      for (size_t j = 0; j < keys.size(); ++j) {
        const float e = std::exp(sc[j] - m);
        den += e;
        for (int64_t i = 0; i < hd; ++i) acc[i] += cpu::round_bf16(e) * keys[j][i];
      }
      den += std::exp(sink[h] - m);
      float* o = want.data() + (t * heads + h) * hd;
      for (int64_t i = 0; i < hd; ++i) o[i] = cpu::round_bf16(acc[i] / den);
      rope.rotate(o + hd - rd, cos.data() + t * rd / 2, sin.data() + t * rd / 2, true);
    }
  }
  cuda::DeviceBuffer dq = to_device(q), dkv = to_device(kv), dsink = to_device(sink), dc = to_device(cos),
                     ds = to_device(sin), dsel = to_device(selected), dstep = to_device(step);
  const int64_t max_keys = W + capacity;
  cuda::DeviceBuffer scores = poisoned(rows * heads * max_keys), out = poisoned(want.size());
  cuda::ops::SparseAttention p;
  p.q = dq.as<float>(), p.kv = dkv.as<float>(), p.sink = dsink.as<float>(), p.cos = dc.as<float>(), p.sin = ds.as<float>();
  p.heads = heads, p.hd = hd, p.rd = rd, p.window = W, p.ratio = ratio;
  p.selected = with_selection ? dsel.as<int32_t>() : nullptr;
  p.topk = topk, p.max_keys = max_keys, p.scale = scale, p.scores = scores.as<float>(), p.o = out.as<float>();
  p.window_offset = window_off, p.entries_offset = entries_off;
  cuda::ops::sparse_attention(nullptr, p, dstep.as<cuda::ops::StepRow>(), rows);
  expect_bf16_close(from_device<float>(out, want.size()), want, 2e-3,
                    "attention ratio " + std::to_string(ratio) + (with_selection ? " top-k" : " all entries"), 0.9);

  // The ring afterwards: each run's last W positions, the rest untouched.
  cuda::ops::window_store(nullptr, window_off, dstep.as<cuda::ops::StepRow>(), rows, dkv.as<float>(), hd, W);
  for (size_t s = 0; s < runs.size(); ++s) {
    std::vector<float> ring(slot_host[s].begin(), slot_host[s].begin() + W * hd);
    const int64_t begin = step[static_cast<size_t>(std::find_if(step.begin(), step.end(), [&](const cuda::ops::StepRow& r) {
                                                     return r.slot == slots[s].as<float>();
                                                   }) - step.begin())].row_begin;
    for (int64_t p2 = std::max(runs[s].start, runs[s].start + runs[s].n - W); p2 < runs[s].start + runs[s].n; ++p2)
      std::copy(kv.begin() + (begin + p2 - runs[s].start) * hd, kv.begin() + (begin + p2 - runs[s].start + 1) * hd,
                ring.begin() + (p2 % W) * hd);
    const std::vector<float> got = from_device<float>(slots[s], W * hd);
    expect_close(got, ring, 0.0, 0.0, 1.0, "window ring of run " + std::to_string(s));
  }
}

TEST(CudaOps, SparseAttentionWithSinksMatchesTheCpuFormula) {
  FP4SERVE_REQUIRE_GPU();
  std::mt19937 rng = fresh_rng();
  check_attention(0, false, rng);
  check_attention(4, true, rng);
  check_attention(4, false, rng);
}

}  // namespace
}  // namespace fp4serve
#endif
