// Instantiates the decode kernels (skinny_gemm.cuh) and chooses their work split.
// Instantiations: dense {BF16, FP8, MXFP4, NVFP4, NVFP4 with BF16 activations} and MoE
// gate/up and down {FP8, MXFP4, NVFP4}, each for 8 or 16 tokens: 22 kernels.
#include <cuda_runtime.h>

#include <algorithm>

#include "backend/cuda/kernel_launchers.h"
#include "backend/cuda/skinny_gemm.cuh"

namespace fp4serve::cuda {
namespace {

using skinny::Mode;
using KernelFn = void (*)(const skinny::Params);

template <WeightKind W, bool kBf16Act, Mode M>
KernelFn pick(int token_tiles) {
  return token_tiles == 1 ? skinny::skinny_gemm_kernel<W, kBf16Act, 1, M> : skinny::skinny_gemm_kernel<W, kBf16Act, 2, M>;
}

KernelFn dense_kernel(WeightKind w, ActKind act, int token_tiles) {
  switch (w) {
    case WeightKind::kBF16: return pick<WeightKind::kBF16, true, Mode::kDense>(token_tiles);
    case WeightKind::kFP8Block: return pick<WeightKind::kFP8Block, false, Mode::kDense>(token_tiles);
    case WeightKind::kMXFP4: return pick<WeightKind::kMXFP4, false, Mode::kDense>(token_tiles);
    case WeightKind::kNVFP4:
      return act == ActKind::kBF16 ? pick<WeightKind::kNVFP4, true, Mode::kDense>(token_tiles)
                                   : pick<WeightKind::kNVFP4, false, Mode::kDense>(token_tiles);
  }
  return nullptr;
}

template <Mode M>
KernelFn moe_kernel(WeightKind w, int token_tiles) {
  switch (w) {
    case WeightKind::kFP8Block: return pick<WeightKind::kFP8Block, false, M>(token_tiles);
    case WeightKind::kMXFP4: return pick<WeightKind::kMXFP4, false, M>(token_tiles);
    case WeightKind::kNVFP4: return pick<WeightKind::kNVFP4, false, M>(token_tiles);
    case WeightKind::kBF16: return nullptr;
  }
  return nullptr;
}

int steps_per_block(WeightKind w) {
  return w == WeightKind::kFP8Block ? 2 : (w == WeightKind::kBF16 ? 4 : 1);
}
int staged_bytes(WeightKind w) { return w == WeightKind::kFP8Block ? 1 : 2; }

// Chooses how many CTAs split K. Every CTA of a launch does the same work, so the time is
// about (waves of the device's CTA slots) x (time of one CTA), and a CTA's time is its K range
// plus a fixed cost (staging, ramp-up, epilogue) worth about 512 elements of K. A grid of 280
// CTAs on 264 slots costs two full waves; the model picks 252. Allowed split counts keep at
// least one burst of streaming steps per split (8 steps with more than 8 tokens, whose partial
// sums cost 16 KB per CTA to add up) and the staged activations within shared memory; small
// matrices thus spread over many short CTAs instead of a few long chains.
void choose_split(WeightKind w, int64_t k, int64_t units, int num_sms, SkinnyPlan& plan) {
  const int64_t blocks = k / 128;
  const int64_t kc_cap = w == WeightKind::kFP8Block ? 4096 : 2048;
  const int64_t min_splits = (blocks * 128 + kc_cap - 1) / kc_cap;
  const int64_t min_steps = plan.token_tiles == 1 ? skinny::kStepsInFlight : 8;
  const int64_t min_blocks = std::max<int64_t>(1, min_steps / steps_per_block(w));
  const int64_t max_splits = std::max<int64_t>(min_splits, blocks / min_blocks);
  const int64_t slots = static_cast<int64_t>(skinny::kCtasPerSm) * num_sms;
  int64_t splits = min_splits;
  int64_t best = -1;
  for (int64_t s = min_splits; s <= max_splits; ++s) {
    const int64_t waves = (std::max<int64_t>(units, 1) * s + slots - 1) / slots;
    const int64_t cost = waves * ((blocks + s - 1) / s * 128 + 512);
    if (best < 0 || cost < best) {
      best = cost;
      splits = s;
    }
  }
  plan.splits = static_cast<int>(splits);
  plan.kc_max = static_cast<int>((blocks + splits - 1) / splits * 128);
  plan.smem_bytes = skinny::smem_bytes(staged_bytes(w), plan.kc_max, plan.token_tiles);
  plan.counters = units;
  plan.partial_floats = splits > 1 ? units * splits * skinny::kPartialFloats : 0;
}

}  // namespace

SkinnyPlan plan_skinny_dense(WeightKind weight, int64_t n, int64_t k, int64_t m, int num_sms) {
  SkinnyPlan plan;
  plan.token_tiles = m <= 8 ? 1 : 2;
  plan.row_blocks = static_cast<int>((n + skinny::kRowsPerCta - 1) / skinny::kRowsPerCta);
  choose_split(weight, k, plan.row_blocks, num_sms, plan);
  plan.grid = plan.row_blocks * plan.splits;
  return plan;
}

SkinnyPlan plan_skinny_moe(WeightKind weight, bool gate_up, int64_t n, int64_t k, int64_t tokens, int max_items,
                           int num_sms) {
  SkinnyPlan plan;
  plan.token_tiles = skinny_pairs_per_item(tokens) / 8;
  plan.row_blocks = static_cast<int>(gate_up ? n / 128 : (n + skinny::kRowsPerCta - 1) / skinny::kRowsPerCta);
  const int64_t units = static_cast<int64_t>(max_items) * plan.row_blocks;
  choose_split(weight, k, units, num_sms, plan);
  // One CTA per unit up to a few waves (CTAs beyond the device's item count exit at once);
  // beyond that the CTAs loop over units.
  plan.grid = static_cast<int>(
      std::min<int64_t>(units * plan.splits, 4 * static_cast<int64_t>(skinny::kCtasPerSm) * num_sms));
  return plan;
}

cudaError_t launch_skinny_dense(const DenseGemmArgs& a, const SkinnyPlan& plan, const Scratch& scratch,
                                cudaStream_t stream) {
  return skinny::launch_kernel(dense_kernel(a.weight, a.act, plan.token_tiles), skinny::dense_params(a, plan, scratch),
                               plan, stream);
}

cudaError_t launch_skinny_moe(const MoeGemmArgs& a, bool gate_up, const SkinnyPlan& plan, const Scratch& scratch,
                              cudaStream_t stream) {
  skinny::Params p{};
  p.weight = a.weight;
  copy_moe_args(a, p);
  p.row_blocks = plan.row_blocks;
  p.splits = plan.splits;
  p.blocks_128 = static_cast<int>(a.k / 128);
  p.kc_max = plan.kc_max;
  p.partials = scratch.partials;
  p.counters = scratch.counters;
  const KernelFn fn = gate_up ? moe_kernel<Mode::kGateUp>(a.weight, plan.token_tiles)
                              : moe_kernel<Mode::kDown>(a.weight, plan.token_tiles);
  return skinny::launch_kernel(fn, p, plan, stream);
}

}  // namespace fp4serve::cuda
