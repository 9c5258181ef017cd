// A cost model of one decode step split over N GPUs, so users can choose tensor vs expert
// parallelism (and NVLink vs PCIe machines) before renting them. A decode step of B
// sequences is taken to be memory-bound: its time on a rank is the weight bytes that rank
// reads over HBM bandwidth, plus the collectives over the link (latency + bytes sent /
// bandwidth). Context reads (the compressed KV) and compute are left out; the model
// compares layouts, it does not predict tokens per second.
//
// What crosses the wire per main layer (values as BF16, 2 bytes):
//   TP, experts by columns      all-reduce of B x D after attention (wo_b) and after the FFN
//                               (shared + routed experts summed locally first)
//   EP, attention by heads      the same two all-reduces: after attention every rank has every
//                               token, runs its own experts on the tokens routed to them, and the
//                               FFN all-reduce combines; EP changes what is read, not what is sent
//   EP, data-parallel attention each rank attends to its own B/N sequences; tokens go to the
//                               owners of their k experts and come back (two all-to-alls of
//                               k x D per token), attention weights are replicated
// plus, once per step, the embedding all-reduce (B x D) and the head's all-gather of logits
// (B x vocab float32).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "parallel/shard_plan.h"

namespace fp4serve {

struct LinkSpec {
  std::string name;
  double bytes_per_second = 0;   // per direction, per GPU
  double latency_seconds = 0;    // per collective
};

// H100 SXM NVLink 4 (~450 GB/s per direction) and PCIe 5 x16 as measured by NCCL (~25 GB/s);
// latencies are typical small-message NCCL all-reduce times, an assumption to adjust.
std::vector<LinkSpec> default_links();
inline constexpr double kHbmBytesPerSecond = 3.35e12;  // H100 SXM HBM3
inline constexpr double kWireBytesPerValue = 2;        // BF16 activations

enum class DecodeLayout : uint8_t { kTensorParallel, kExpertParallel, kExpertParallelDataAttention };
const char* decode_layout_name(DecodeLayout layout);

// Weight bytes one rank reads per step, from the checkpoint's stored sizes.
struct StepWeights {
  double dense_bytes = 0;   // attention, router, shared experts, compressors, indexer, head: one rank's share
  double expert_bytes = 0;  // routed experts this rank reads (expected, balanced routing)
};

struct StepCost {
  DecodeLayout layout;
  int64_t batch = 0;
  StepWeights weights;
  double hbm_seconds = 0;
  int64_t collectives = 0;
  double wire_bytes = 0;  // sent by one rank
  std::vector<double> link_seconds;  // per default_links() entry
};

// Bytes one rank sends per main layer and token in `layout` (formulas above).
double wire_bytes_per_layer_token(const ModelConfig& config, DecodeLayout layout, int ranks);

// Uses the checkpoint's stored bytes per linear (main layers and head; MTP excluded).
StepCost decode_step_cost(const Checkpoint& checkpoint, int ranks, DecodeLayout layout, int64_t batch);

std::string decode_cost_text(const Checkpoint& checkpoint, int ranks, const std::vector<int64_t>& batches);

}  // namespace fp4serve
