#ifdef FP4SERVE_HAVE_CUDA
#include "backend/cuda/moe_cuda.h"

#include <algorithm>

#include "base/error.h"
#include "backend/cuda/kernel_launchers.h"

namespace fp4serve::cuda {
namespace {

void check_same(const LinearWeight& w, const LinearWeight& first, int64_t n, int64_t k) {
  FP4SERVE_CHECK(w.encoding == first.encoding, "{}: encoding {} differs from {} ({})", w.name,
                 encoding_name(w.encoding), first.name, encoding_name(first.encoding));
  FP4SERVE_CHECK(w.out_features == n && w.in_features == k, "{}: shape [{}, {}], expected [{}, {}]", w.name,
                 w.out_features, w.in_features, n, k);
}

}  // namespace

DeviceExperts DeviceExperts::upload(std::span<const LinearWeight> w1, std::span<const LinearWeight> w3,
                                    std::span<const LinearWeight> w2) {
  FP4SERVE_CHECK(!w1.empty(), "MoE experts: no experts given");
  FP4SERVE_CHECK(w1.size() == w3.size() && w1.size() == w2.size(),
                 "MoE experts: {} w1, {} w3 and {} w2 weights (counts must match)", w1.size(), w3.size(), w2.size());
  FP4SERVE_CHECK(w1.size() <= 1024, "MoE experts: {} experts, at most 1024 supported", w1.size());
  const LinearWeight& first = w1[0];
  FP4SERVE_CHECK(first.out_features % 128 == 0, "{}: intermediate size {} is not a multiple of 128", first.name,
                 first.out_features);
  std::vector<DeviceLinear> d1, d3, d2;
  for (size_t e = 0; e < w1.size(); ++e) {
    check_same(w1[e], first, first.out_features, first.in_features);
    check_same(w3[e], first, first.out_features, first.in_features);
    check_same(w2[e], first, first.in_features, first.out_features);
    d1.push_back(DeviceLinear::upload(w1[e]));
    d3.push_back(DeviceLinear::upload(w3[e]));
    d2.push_back(DeviceLinear::upload(w2[e]));
  }
  return assemble(std::move(d1), std::move(d3), std::move(d2));
}

DeviceExperts DeviceExperts::assemble(std::vector<DeviceLinear> w1, std::vector<DeviceLinear> w3,
                                      std::vector<DeviceLinear> w2) {
  FP4SERVE_CHECK(!w1.empty() && w1.size() == w3.size() && w1.size() == w2.size() && w1.size() <= 1024,
                 "MoE experts: {} w1, {} w3, {} w2 (counts must match, 1..1024)", w1.size(), w3.size(), w2.size());
  DeviceExperts d;
  d.kind_ = w1[0].kind();
  d.intermediate_ = w1[0].out_features();
  d.hidden_ = w1[0].in_features();
  FP4SERVE_CHECK(d.kind_ != WeightKind::kBF16, "{}: BF16 experts are not supported by the CUDA MoE kernels",
                 w1[0].name());
  FP4SERVE_CHECK(d.intermediate_ % 128 == 0, "{}: intermediate size {} is not a multiple of 128", w1[0].name(),
                 d.intermediate_);
  for (size_t e = 0; e < w1.size(); ++e) {
    for (const DeviceLinear* x : {&w1[e], &w3[e], &w2[e]}) {
      FP4SERVE_CHECK(x->kind() == d.kind_, "{}: encoding differs from {}", x->name(), w1[0].name());
    }
    FP4SERVE_CHECK(w1[e].out_features() == d.intermediate_ && w1[e].in_features() == d.hidden_ &&
                       w3[e].out_features() == d.intermediate_ && w3[e].in_features() == d.hidden_ &&
                       w2[e].out_features() == d.hidden_ && w2[e].in_features() == d.intermediate_,
                   "MoE expert {}: shapes differ from expert 0", e);
  }
  d.w1_ = std::move(w1);
  d.w3_ = std::move(w3);
  d.w2_ = std::move(w2);
  const size_t count = d.w1_.size();
  std::vector<const void*> pointers(6 * count);
  std::vector<float> scales(3 * count);
  const std::vector<DeviceLinear>* sets[3] = {&d.w1_, &d.w3_, &d.w2_};
  for (int s = 0; s < 3; ++s) {
    for (size_t e = 0; e < count; ++e) {
      pointers[s * count + e] = (*sets[s])[e].weight_data();
      pointers[(3 + s) * count + e] = (*sets[s])[e].scale_data();
      scales[s * count + e] = (*sets[s])[e].global_scale();
    }
  }
  d.tables_ = DeviceBuffer(pointers.size() * sizeof(void*));
  d.tables_.upload(pointers.data(), pointers.size() * sizeof(void*));
  d.scales_ = DeviceBuffer(scales.size() * sizeof(float));
  d.scales_.upload(scales.data(), scales.size() * sizeof(float));
  return d;
}

size_t DeviceExperts::expert_bytes(int e) const {
  return w1_.at(e).device_bytes() + w3_.at(e).device_bytes() + w2_.at(e).device_bytes();
}

const void* const* DeviceExperts::table(int which) const {
  return tables_.as<const void*>() + static_cast<size_t>(which) * w1_.size();
}
const void* const* DeviceExperts::scale_table(int which) const {
  return tables_.as<const void*>() + static_cast<size_t>(3 + which) * w1_.size();
}
const float* DeviceExperts::global_scales(int which) const {
  return scales_.as<float>() + static_cast<size_t>(which) * w1_.size();
}

MoeBatch route_moe(GpuContext& ctx, const DeviceExperts& ex, const MoeRouting& r, Regime regime) {
  FP4SERVE_CHECK(r.top_k > 0 && r.top_k <= 32, "MoE experts: top_k {} out of range 1..32", r.top_k);
  FP4SERVE_CHECK(r.tokens >= 0, "MoE experts: negative token count {}", r.tokens);
  FP4SERVE_CHECK(r.tokens == 0 || (r.expert_ids != nullptr && r.weights != nullptr),
                 "MoE experts: null expert ids or routing weights");
  MoeBatch b;
  b.tokens = r.tokens;
  b.top_k = r.top_k;
  b.expert_ids = r.expert_ids;
  const int64_t pairs = r.tokens * r.top_k;
  b.decode = regime == Regime::kDecode || (regime == Regime::kAuto && pairs <= 4 * static_cast<int64_t>(ex.count()));
  b.pairs_per_item = b.decode ? skinny_pairs_per_item(r.tokens) : kTiledPairsPerItem;
  b.max_items = static_cast<int>(std::min<int64_t>(pairs, pairs / b.pairs_per_item + ex.count()));
  if (pairs == 0) return b;
  MoePlanOutputs plan;
  plan.sorted_row = static_cast<int*>(ctx.work(WorkSlot::kMoeSortedRow, pairs * sizeof(int)));
  plan.sorted_weight = static_cast<float*>(ctx.work(WorkSlot::kMoeSortedWeight, pairs * sizeof(float)));
  plan.pair_position = static_cast<int*>(ctx.work(WorkSlot::kMoePairPosition, pairs * sizeof(int)));
  plan.items = static_cast<int*>(ctx.work(WorkSlot::kMoeItems, static_cast<size_t>(b.max_items) * 3 * sizeof(int)));
  plan.num_items = static_cast<int*>(ctx.work(WorkSlot::kMoeItemCount, sizeof(int)));
  check_cuda(launch_moe_plan(r.expert_ids, r.weights, static_cast<int>(r.tokens), r.top_k, ex.count(),
                             b.pairs_per_item, plan, ctx.stream()),
             "MoE routing plan");
  b.sorted_row = plan.sorted_row;
  b.sorted_weight = plan.sorted_weight;
  b.pair_position = plan.pair_position;
  b.items = plan.items;
  b.num_items = plan.num_items;
  return b;
}

const void* moe_projections(GpuContext& ctx, const DeviceExperts& ex, const MoeBatch& b, const GemmInput& x,
                            float swiglu_limit) {
  FP4SERVE_CHECK(x.act == ActKind::kFP8 && x.x_scale != nullptr, "MoE experts: activations must be FP8 with scales");
  FP4SERVE_CHECK(b.tokens == x.m, "MoE experts: routing covers {} tokens, activations {}", b.tokens, x.m);
  const int64_t pairs = b.tokens * b.top_k;
  const int64_t hidden = ex.hidden(), inter = ex.intermediate();
  auto* pair_out = ctx.work(WorkSlot::kMoePairOutputs, static_cast<size_t>(pairs * hidden) * 2);
  if (pairs == 0) return pair_out;
  auto* hidden_rows = ctx.work(WorkSlot::kMoeHidden, static_cast<size_t>(pairs * inter) * 2);
  auto* hidden_codes = ctx.work(WorkSlot::kMoeHiddenCodes, static_cast<size_t>(pairs * inter));
  auto* hidden_scales =
      static_cast<float*>(ctx.work(WorkSlot::kMoeHiddenScales, static_cast<size_t>(pairs * (inter / 128)) * 4));

  MoeGemmArgs up;
  up.weight = ex.kind();
  for (int i = 0; i < 2; ++i) {
    up.w[i] = ex.table(i);
    up.w_scale[i] = ex.scale_table(i);
    up.global_scale[i] = ex.kind() == WeightKind::kNVFP4 ? ex.global_scales(i) : nullptr;
  }
  up.n = inter;
  up.k = hidden;
  up.x = x.x;
  up.x_scale = x.x_scale;
  up.x_stride = x.x_stride ? x.x_stride : hidden;
  up.act_row = b.sorted_row;
  up.route_weight = b.sorted_weight;
  up.items = b.items;
  up.num_items = b.num_items;
  up.max_items = b.max_items;
  up.pairs_per_item = b.pairs_per_item;
  up.swiglu_limit = swiglu_limit;
  up.out = hidden_rows;
  up.out_stride = inter;

  MoeGemmArgs down = up;
  down.w[0] = ex.table(2);
  down.w_scale[0] = ex.scale_table(2);
  down.w[1] = nullptr;
  down.w_scale[1] = nullptr;
  down.global_scale[0] = ex.kind() == WeightKind::kNVFP4 ? ex.global_scales(2) : nullptr;
  down.global_scale[1] = nullptr;
  down.n = hidden;
  down.k = inter;
  down.x = hidden_codes;
  down.x_scale = hidden_scales;
  down.x_stride = inter;
  down.act_row = nullptr;
  down.route_weight = nullptr;
  down.out = pair_out;
  down.out_stride = hidden;

  if (b.decode) {
    const SkinnyPlan p_up = plan_skinny_moe(ex.kind(), true, inter, hidden, b.tokens, b.max_items, ctx.num_sms());
    const SkinnyPlan p_down = plan_skinny_moe(ex.kind(), false, hidden, inter, b.tokens, b.max_items, ctx.num_sms());
    const Scratch scratch = ctx.scratch(std::max(p_up.partial_floats, p_down.partial_floats),
                                        std::max(p_up.counters, p_down.counters));
    check_cuda(launch_skinny_moe(up, true, p_up, scratch, ctx.stream()), "MoE gate/up (decode)");
    quantize_activations(ctx, hidden_rows, inter, pairs, inter, hidden_codes, hidden_scales);
    check_cuda(launch_skinny_moe(down, false, p_down, scratch, ctx.stream()), "MoE down (decode)");
  } else {
    check_cuda(launch_tiled_moe(up, true, ctx.num_sms(), ctx.stream()), "MoE gate/up (prefill)");
    quantize_activations(ctx, hidden_rows, inter, pairs, inter, hidden_codes, hidden_scales);
    check_cuda(launch_tiled_moe(down, false, ctx.num_sms(), ctx.stream()), "MoE down (prefill)");
  }
  return pair_out;
}

void combine_moe(GpuContext& ctx, const MoeBatch& b, const void* pair_rows, int64_t hidden, float* y) {
  check_cuda(launch_moe_combine(pair_rows, hidden, b.pair_position, b.expert_ids, static_cast<int>(b.tokens),
                                b.top_k, hidden, y, hidden, ctx.stream()),
             "MoE combine");
}

void moe_experts(GpuContext& ctx, const DeviceExperts& ex, const GemmInput& x, const MoeRouting& r,
                 float swiglu_limit, float* y, Regime regime) {
  const MoeBatch b = route_moe(ctx, ex, r, regime);
  const void* rows = moe_projections(ctx, ex, b, x, swiglu_limit);
  combine_moe(ctx, b, rows, ex.hidden(), y);
}

}  // namespace fp4serve::cuda
#endif  // FP4SERVE_HAVE_CUDA
