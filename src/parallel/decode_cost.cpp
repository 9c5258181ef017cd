#include "parallel/decode_cost.h"

#include <fmt/format.h>

#include <cmath>

namespace fp4serve {
namespace {

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// Bytes sent per rank by a ring all-reduce / all-gather of `total` bytes over n ranks.
double all_reduce_sent(double total, int n) { return n > 1 ? 2.0 * (n - 1) / n * total : 0; }
double all_gather_sent(double total, int n) { return n > 1 ? double(n - 1) / n * total : 0; }

}  // namespace

std::vector<LinkSpec> default_links() {
  return {{"NVLink (450 GB/s)", 450e9, 15e-6}, {"PCIe (25 GB/s)", 25e9, 40e-6}};
}

const char* decode_layout_name(DecodeLayout layout) {
  switch (layout) {
    case DecodeLayout::kTensorParallel: return "TP (experts by columns)";
    case DecodeLayout::kExpertParallel: return "EP (attention by heads)";
    case DecodeLayout::kExpertParallelDataAttention: return "EP + data-parallel attention";
  }
  return "?";
}

double wire_bytes_per_layer_token(const ModelConfig& c, DecodeLayout layout, int n) {
  const double hidden = double(c.hidden_size) * kWireBytesPerValue;
  if (layout == DecodeLayout::kExpertParallelDataAttention)
    return n > 1 ? 2.0 * double(c.experts_per_token) * hidden * (n - 1) / n : 0;  // dispatch + combine
  return 2 * all_reduce_sent(hidden, n);
}

StepCost decode_step_cost(const Checkpoint& ck, int n, DecodeLayout layout, int64_t batch) {
  const ModelConfig& c = ck.config;
  StepCost cost;
  cost.layout = layout;
  cost.batch = batch;
  // Whole-model stored bytes by kind; one rank's share follows from the layout.
  double dense = 0, attention = 0, experts = 0;
  for (const auto& [name, lw] : ck.linears) {
    if (!starts_with(name, "layers.") && name != "head") continue;
    const double bytes = double(lw.stored_bytes());
    if (name.find(".ffn.experts.") != std::string::npos) {
      experts += bytes;
    } else {
      dense += bytes;
      if (name.find(".attn.") != std::string::npos) attention += bytes;
    }
  }
  const double E = double(c.n_routed_experts), k = double(c.experts_per_token);
  const double per_expert = c.num_layers > 0 && E > 0 ? experts / (E * double(c.num_layers)) : 0;
  // Distinct experts a layer uses for b tokens, each picking k of E (uniform, independent).
  auto active = [&](double tokens) { return E > 0 ? E * (1.0 - std::pow(1.0 - k / E, tokens)) : 0; };
  const double layers = double(c.num_layers), b = double(batch);
  switch (layout) {
    case DecodeLayout::kTensorParallel:
      cost.weights.dense_bytes = dense / n;
      cost.weights.expert_bytes = layers * active(b) * per_expert / n;
      break;
    case DecodeLayout::kExpertParallel:
      cost.weights.dense_bytes = dense / n;
      cost.weights.expert_bytes = layers * active(b) / n * per_expert;  // its E/N experts, balanced
      break;
    case DecodeLayout::kExpertParallelDataAttention:
      cost.weights.dense_bytes = attention + (dense - attention) / n;  // whole attention on every rank
      cost.weights.expert_bytes = layers * active(b) / n * per_expert;
      break;
  }
  // The EP layouts differ from TP where the batch is small: a rank reads whole experts, so
  // the slowest rank reads at least one whole expert per layer when any of its are used.
  if (layout != DecodeLayout::kTensorParallel && n > 1)
    cost.weights.expert_bytes = std::max(cost.weights.expert_bytes, layers * std::min(1.0, active(b)) * per_expert);
  cost.hbm_seconds = (cost.weights.dense_bytes + cost.weights.expert_bytes) / kHbmBytesPerSecond;

  const double hidden = double(c.hidden_size) * kWireBytesPerValue;
  const double tokens = layout == DecodeLayout::kExpertParallelDataAttention ? std::ceil(b / n) : b;
  cost.wire_bytes = layers * wire_bytes_per_layer_token(c, layout, n) * tokens;
  cost.collectives = n > 1 ? 2 * c.num_layers : 0;
  if (n > 1 && layout != DecodeLayout::kExpertParallelDataAttention) {
    cost.wire_bytes += all_reduce_sent(hidden * b, n);                       // embedding rows
    cost.wire_bytes += all_gather_sent(double(c.vocab_size) * 4.0 * b, n);   // logits
    cost.collectives += 2;
  }
  for (const LinkSpec& link : default_links())
    cost.link_seconds.push_back(double(cost.collectives) * link.latency_seconds + cost.wire_bytes / link.bytes_per_second);
  return cost;
}

std::string decode_cost_text(const Checkpoint& ck, int n, const std::vector<int64_t>& batches) {
  const ModelConfig& c = ck.config;
  const auto links = default_links();
  std::string out = fmt::format(
      "decode step cost model over {} GPUs (weights read at {:.2f} TB/s HBM; activations BF16 on the wire; "
      "context reads and compute left out)\n",
      n, kHbmBytesPerSecond / 1e12);
  out += fmt::format("per main layer and token, sent by one rank: TP or EP {:.1f} kB (2 all-reduces of {} x 2 bytes); "
                     "EP + data-parallel attention {:.1f} kB (dispatch + combine of {} x {} x 2 bytes)\n",
                     wire_bytes_per_layer_token(c, DecodeLayout::kTensorParallel, n) / 1e3, c.hidden_size,
                     wire_bytes_per_layer_token(c, DecodeLayout::kExpertParallelDataAttention, n) / 1e3,
                     c.experts_per_token, c.hidden_size);
  out += fmt::format("{:<30} {:>6} {:>11} {:>9} {:>10}", "layout", "batch", "read GB", "HBM ms", "wire MB");
  for (const LinkSpec& l : links) out += fmt::format(" {:>26}", l.name + ": ms, share");
  out += "\n";
  for (DecodeLayout layout :
       {DecodeLayout::kTensorParallel, DecodeLayout::kExpertParallel, DecodeLayout::kExpertParallelDataAttention}) {
    for (int64_t b : batches) {
      const StepCost s = decode_step_cost(ck, n, layout, b);
      out += fmt::format("{:<30} {:>6} {:>11.2f} {:>9.3f} {:>10.3f}", decode_layout_name(layout), b,
                         (s.weights.dense_bytes + s.weights.expert_bytes) / 1e9, s.hbm_seconds * 1e3, s.wire_bytes / 1e6);
      for (double t : s.link_seconds)
        out += fmt::format(" {:>17.3f}, {:>5.0f}%", t * 1e3, 100.0 * t / (t + s.hbm_seconds));
      out += "\n";
    }
  }
  return out;
}

}  // namespace fp4serve
