#include "cli/metered_backend.h"

#include <algorithm>
#include <cctype>

#include "base/error.h"

namespace fp4serve::cli {
namespace {

// Drops the layer and expert indices ("layers.3." and the "17." of "experts.17.").
std::string strip_indices(const std::string& name) {
  std::string out;
  size_t at = 0;
  while (at <= name.size()) {
    const size_t dot = std::min(name.find('.', at), name.size());
    const std::string part = name.substr(at, dot - at);
    const bool number = !part.empty() && std::all_of(part.begin(), part.end(), [](unsigned char c) { return std::isdigit(c); });
    const bool layers = part == "layers" && at == 0;
    if (!number && !layers && !part.empty()) out += (out.empty() ? "" : ".") + part;
    at = dot + 1;
  }
  return out;
}

// The MoE op's three projection calls: the gate, then w1 and w3 of every routed expert a
// row chose and of the shared expert, then their w2s. Each row runs from the start of
// its call to the start of the next, so it includes the element-wise work after it.
const char* moe_segment_of(const std::string& weight_class) {
  if (weight_class.ends_with(".gate")) return "moe ffn.gate + routing";
  if (weight_class.ends_with(".w2")) return "moe ffn w2 (routed + shared) + combine";
  return "moe ffn w1+w3 (routed + shared) + swiglu";
}

}  // namespace

std::string projection_class(const std::string& weight_name) { return strip_indices(weight_name); }

MeteredBackend::MeteredBackend(Backend& inner) : inner_(inner) {
  try {
    inner_.set_activation_observer(this);
    observer_installed_ = true;
  } catch (const Error&) {
    observer_installed_ = false;  // the MoE's experts are then estimated (see the header)
  }
}

void MeteredBackend::reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  window_ = Window{};
  window_.experts_observed = observer_installed_;
  seen_.clear();
  profile_.clear();
}

void MeteredBackend::touch(const LinearWeight& w) {
  if (seen_.insert(&w).second) {
    window_.weight_bytes += w.stored_bytes();
    window_.weights.push_back(&w);
  }
}

MeteredBackend::Clock::time_point MeteredBackend::start_op() { return profiling_ ? Clock::now() : Clock::time_point{}; }

void MeteredBackend::end_op(const std::string& row, Clock::time_point t0, uint64_t bytes) {
  if (!profiling_) return;
  inner_.synchronize();
  ProfileRow& r = profile_[row];
  r.seconds += std::chrono::duration<double>(Clock::now() - t0).count();
  r.calls += 1;
  r.bytes += bytes;
}

void MeteredBackend::embed(const EmbedParams& p) {
  const auto t0 = start_op();
  inner_.embed(p);
  const uint64_t bytes = static_cast<uint64_t>(p.rows * p.dim) * dtype_size(p.dtype);
  window_.weight_bytes += bytes;
  end_op("op embed", t0, bytes);
}

void MeteredBackend::hc_pre(const HcPreParams& p) {
  const auto t0 = start_op();
  inner_.hc_pre(p);
  touch(*p.site.fn);
  window_.linear_flops += 2.0 * static_cast<double>(p.rows * p.site.fn->out_features * p.site.fn->in_features);
  end_op("op hc_pre", t0, p.site.fn->stored_bytes());
}

void MeteredBackend::hc_post(const HcPostParams& p) {
  const auto t0 = start_op();
  inner_.hc_post(p);
  end_op("op hc_post", t0);
}

void MeteredBackend::hc_head(const HcHeadParams& p) {
  const auto t0 = start_op();
  inner_.hc_head(p);
  touch(*p.site.fn);
  window_.linear_flops += 2.0 * static_cast<double>(p.rows * p.site.fn->out_features * p.site.fn->in_features);
  end_op("op hc_head", t0, p.site.fn->stored_bytes());
}

void MeteredBackend::rms_norm(const RmsNormParams& p) {
  const auto t0 = start_op();
  inner_.rms_norm(p);
  end_op("op rms_norm", t0);
}

void MeteredBackend::add_to_streams(const AddToStreamsParams& p) {
  const auto t0 = start_op();
  inner_.add_to_streams(p);
  end_op("op add_to_streams", t0);
}

void MeteredBackend::linear(std::span<const LinearJob> jobs) {
  const auto t0 = start_op();
  inner_.linear(jobs);
  uint64_t bytes = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const LinearJob& j = jobs[i];
    const int64_t out_rows = (j.row_end < 0 ? j.weight->out_features : j.row_end) - j.row_begin;
    window_.linear_flops += 2.0 * static_cast<double>(j.rows * out_rows * j.weight->in_features);
    touch(*j.weight);
    bool first_in_call = true;
    for (size_t k = 0; k < i && first_in_call; ++k) first_in_call = jobs[k].weight != j.weight;
    if (first_in_call) bytes += j.weight->stored_bytes();
  }
  if (jobs.empty()) return;
  // A grouped call (the projections that share an input) is one row naming all of them.
  std::string row = "linear ";
  std::vector<std::string> classes;
  for (const LinearJob& j : jobs) {
    std::string c = projection_class(j.weight->name);
    if (std::find(classes.begin(), classes.end(), c) == classes.end()) classes.push_back(std::move(c));
  }
  for (size_t i = 0; i < classes.size(); ++i) row += (i ? " + " : "") + classes[i];
  end_op(row, t0, bytes);
}

void MeteredBackend::attention_heads(const AttentionHeadsParams& p) {
  const auto t0 = start_op();
  inner_.attention_heads(p);
  end_op("op attention_heads", t0);
}

void MeteredBackend::attention_sequences(const AttentionSequencesParams& p, const StepRows& rows) {
  const auto t0 = start_op();
  inner_.attention_sequences(p, rows);
  end_op("op attention_sequences", t0);
}

void MeteredBackend::mean_streams(const MeanStreamsParams& p) {
  const auto t0 = start_op();
  inner_.mean_streams(p);
  end_op("op mean_streams", t0);
}

void MeteredBackend::block_attention(const BlockAttentionParams& p, const StepRows& rows) {
  const auto t0 = start_op();
  inner_.block_attention(p, rows);
  end_op("op block_attention", t0);
}

void MeteredBackend::close_moe_segment(Clock::time_point now) {
  if (moe_segment_.empty()) return;
  ProfileRow& r = profile_[moe_segment_];
  r.seconds += std::chrono::duration<double>(now - moe_segment_start_).count();
  r.calls += 1;
  r.bytes += moe_segment_bytes_;
  moe_segment_.clear();
  moe_segment_bytes_ = 0;
}

void MeteredBackend::observe(const LinearWeight& weight, const float*, int64_t rows, int64_t) {
  if (!in_moe_) return;  // every other linear is counted from its params
  std::lock_guard<std::mutex> lock(mutex_);
  touch(weight);
  window_.linear_flops += 2.0 * static_cast<double>(rows * weight.out_features * weight.in_features);
  if (!profiling_) return;
  const std::string segment = moe_segment_of(projection_class(weight.name));
  if (segment != moe_segment_) {
    const auto now = Clock::now();
    close_moe_segment(now);
    moe_segment_ = segment;
    moe_segment_start_ = now;
  }
  moe_segment_bytes_ += weight.stored_bytes();
}

void MeteredBackend::moe(const MoeParams& p) {
  in_moe_ = true;
  inner_.moe(p);
  in_moe_ = false;
  if (profiling_) {
    inner_.synchronize();
    close_moe_segment(Clock::now());
  }
  if (observer_installed_) return;
  // No observer: the gate, the shared expert and rows x k distinct routed experts at most.
  const int64_t touched = std::min<int64_t>(p.experts, p.rows * p.experts_per_token);
  auto count = [&](const LinearWeight* w, int64_t rows) {
    if (w == nullptr) return;
    touch(*w);
    window_.linear_flops += 2.0 * static_cast<double>(rows * w->out_features * w->in_features);
  };
  count(p.gate, p.rows);
  for (const LinearWeight* w : {p.shared.w1, p.shared.w2, p.shared.w3}) count(w, p.rows);
  for (int64_t e = 0; e < touched; ++e) {
    const ExpertLinears& ex = p.routed[static_cast<size_t>(e)];
    for (const LinearWeight* w : {ex.w1, ex.w2, ex.w3}) count(w, p.rows * p.experts_per_token / std::max<int64_t>(1, touched));
  }
}

void MeteredBackend::set_activation_observer(ActivationObserver*) {
  fail("the benchmark's metered backend keeps the activation observer for itself");
}

}  // namespace fp4serve::cli
