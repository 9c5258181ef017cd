// Backend::moe on the GPU: the fp32 gate, routing on the device, every (token, slot) pair
// through its expert's w1/w3 (linear_exact_gathered reads the expert id on the device, so
// no count comes back to the host), SwiGLU with the routing weight, w2, and the combine in
// ascending expert id with the shared expert last (the CPU backend's order).
#ifdef FP4SERVE_HAVE_CUDA
#include <span>
#include <vector>

#include "backend/cuda/cuda_backend_impl.h"
#include "base/error.h"

namespace fp4serve::cuda {
namespace {

// The expert weights of one projection as a device table, all of one encoding and shape.
// The zero stand-ins for other ranks' experts (expert parallelism; MoeParams::absent) get a
// null weight, which linear_exact_gathered answers with zeros without computing: the
// stand-in adds exactly 0 either way, as the CPU op, which skips them too.
DeviceBuffer table_of(const std::vector<const PlacedLinear*>& weights, const std::vector<const LinearWeight*>& host,
                      std::span<const uint8_t> absent) {
  std::vector<ops::ExactWeight> refs;
  for (size_t e = 0; e < weights.size(); ++e) {
    ops::ExactWeight r = weights[e]->ref;
    FP4SERVE_CHECK(r.kind == weights[0]->ref.kind && r.n == weights[0]->ref.n && r.k == weights[0]->ref.k &&
                       host[e]->encoding == host[0]->encoding,
                   "{}: routed experts must share one encoding and shape ({} differs)", host[0]->name, host[e]->name);
    if (!absent.empty() && absent[e] != 0) r.weight = r.scale = nullptr;
    refs.push_back(r);
  }
  DeviceBuffer b(refs.size() * sizeof(ops::ExactWeight));
  b.upload(refs.data(), refs.size() * sizeof(ops::ExactWeight));
  return b;
}

}  // namespace

const ExpertTables& CudaBackend::expert_tables(const MoeParams& p) {
  auto it = experts_.find(p.gate);
  if (it != experts_.end()) return it->second;
  std::vector<const PlacedLinear*> w1, w3, w2;
  std::vector<const LinearWeight*> h1, h3, h2;
  for (const ExpertLinears& e : p.routed) {
    w1.push_back(&placed(e.w1)), w3.push_back(&placed(e.w3)), w2.push_back(&placed(e.w2));
    h1.push_back(e.w1), h3.push_back(e.w3), h2.push_back(e.w2);
  }
  FP4SERVE_CHECK(p.absent.empty() || p.absent.size() == p.routed.size(), "MoE: {} absent-expert marks for {} experts",
                 p.absent.size(), p.routed.size());
  ExpertTables t;
  t.w1 = table_of(w1, h1, p.absent);
  t.w3 = table_of(w3, h3, p.absent);
  t.w2 = table_of(w2, h2, p.absent);
  FP4SERVE_CHECK(h1[0]->encoding == h3[0]->encoding, "{} and {}: w1 and w3 of different encodings", h1[0]->name, h3[0]->name);
  t.encoding1 = h1[0]->encoding;
  t.encoding2 = h2[0]->encoding;
  return experts_.emplace(p.gate, std::move(t)).first->second;
}

void CudaBackend::moe(const MoeParams& p) {
  if (p.rows == 0) return;
  const int64_t rows = p.rows, D = p.dim, I = p.intermediate, E = p.experts, k = p.experts_per_token, pairs = rows * k;
  FP4SERVE_CHECK(static_cast<int64_t>(p.routed.size()) == E, "MoE: {} routed experts given for {}", p.routed.size(), E);
  const ExpertTables& t = expert_tables(p);

  float* logits = work<float>(Work::kLogits, rows * E);
  const ops::ExactWeight& gate = placed(p.gate).ref;
  ops::linear_exact(stream_, {gate, p.x, D, rows, logits, E, 0, E, false});
  int32_t* selected = work<int32_t>(Work::kRouteExperts, pairs);
  float* route = work<float>(Work::kRouteWeights, pairs);
  ops::moe_route(stream_, logits, rows, E, k, p.bias, p.tid2eid, p.tokens, p.route_scale, selected, route);

  // Activations of the routed experts' w1/w3, quantized once for all pairs.
  const float* x_routed = p.x;
  if (p.numerics.quantizes_input(t.encoding1)) {
    float* q = work<float>(Work::kQuantized, rows * D);
    ops::fp8_quantize_dequantize(stream_, p.x, D, rows, D, 128, q, D);
    x_routed = q;
  }
  float* h1 = work<float>(Work::kHidden1, pairs * I);
  float* h3 = work<float>(Work::kHidden3, pairs * I);
  const auto* w1 = t.w1.as<ops::ExactWeight>();
  const auto* w3 = t.w3.as<ops::ExactWeight>();
  const auto* w2 = t.w2.as<ops::ExactWeight>();
  ops::linear_exact_gathered(stream_, w1, selected, x_routed, D, k, pairs, I, D, h1, true);
  ops::linear_exact_gathered(stream_, w3, selected, x_routed, D, k, pairs, I, D, h3, true);
  float* mid = work<float>(Work::kMid, pairs * I);
  ops::swiglu(stream_, h1, h3, route, pairs, I, p.swiglu_limit, mid);
  const float* mid_in = mid;
  if (p.numerics.quantizes_input(t.encoding2)) {
    float* q = work<float>(Work::kQuantized, pairs * I);
    ops::fp8_quantize_dequantize(stream_, mid, I, pairs, I, 128, q, I);
    mid_in = q;
  }
  float* down = work<float>(Work::kDown, pairs * D);
  ops::linear_exact_gathered(stream_, w2, selected, mid_in, I, 1, pairs, D, I, down, true);

  // The shared expert, through Backend::linear's policy.
  auto act = [&](const LinearWeight* w) {
    return p.numerics.quantizes_input(w->encoding) ? ActivationQuant::kFP8Block128 : ActivationQuant::kNone;
  };
  const int64_t Is = p.shared_intermediate > 0 ? p.shared_intermediate : I;
  float* s1 = work<float>(Work::kSharedHidden1, rows * Is);
  float* s3 = work<float>(Work::kSharedHidden3, rows * Is);
  float* smid = work<float>(Work::kSharedMid, rows * Is);
  float* sdown = work<float>(Work::kSharedDown, rows * D);
  auto job = [&](const LinearWeight* w, const float* x, float* y) {
    LinearJob j;
    j.weight = w;
    j.x = x;
    j.rows = rows;
    j.y = y;
    j.act = act(w);
    j.round_bf16 = true;
    return j;
  };
  const LinearJob up[] = {job(p.shared.w1, p.x, s1), job(p.shared.w3, p.x, s3)};
  linear(up);
  ops::swiglu(stream_, s1, s3, nullptr, rows, Is, p.swiglu_limit, smid);
  const LinearJob downj[] = {job(p.shared.w2, smid, sdown)};
  linear(downj);
  ops::moe_combine(stream_, down, sdown, selected, rows, k, D, p.out);
}

}  // namespace fp4serve::cuda
#endif
