// The backend seam: model/ describes DeepSeek-V4's step (which op, on which buffers,
// with which weights), a Backend executes it. The ops are coarse, one per piece of
// the reference's forward pass (DeepSeek's inference/model.py: Block.hc_pre/hc_post,
// RMSNorm, Linear, Attention with its Compressor and Indexer, MoE with its Gate), so
// that a GPU runs a whole step from device buffers with no host round trip: every
// size an op needs is a number in its params, computable on the host from positions
// (a compressor emits an entry when (p + 1) % ratio == 0), and the only copy back
// is the logits at the end of the step.
//
// Conventions, for every op:
//  - Pointers in params are DEVICE pointers (for the CPU backend, host memory) unless
//    a field says "host". Activations are fp32 buffers; where the reference stores a
//    bf16 tensor they hold bf16-representable values (the "bf16 values" below), so the
//    CPU backend is bit-exact to the references and a GPU may store them as bf16.
//  - Weights are passed as `const LinearWeight*` (the host object the checkpoint
//    owns); a backend looks up its own copy by that address after place(). Small
//    parameters (norm weights, sinks, ape, biases, RoPE frequencies, tid2eid) are
//    passed as the device pointers place() returned.
//  - Ops are enqueued in order on one stream; the host may reuse its own memory as
//    soon as copy_to_device returns; results are visible to the host after
//    copy_to_host (which waits).
//  - Rows of a step: several sequences, each continuing from its own position with
//    any number of new tokens (chunked prefill, decode, or both in one batch); the
//    step's rows are the concatenation of every sequence's new tokens.
//
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "backend/activation_policy.h"
#include "base/tensor.h"
#include "formats/activation_observer.h"
#include "formats/linear_weight.h"

namespace fp4serve {

enum class DeviceKind { kCpu, kCuda };
std::string_view device_kind_name(DeviceKind kind);  // "cpu" / "cuda"

// --- memory -------------------------------------------------------------------------

// An owning device allocation (contents undefined until written). Movable only.
class DeviceBuffer {
 public:
  using Release = void (*)(void* context, void* ptr);
  DeviceBuffer() = default;
  DeviceBuffer(void* ptr, size_t bytes, Release release, void* context)
      : ptr_(ptr), bytes_(bytes), release_(release), context_(context) {}
  DeviceBuffer(DeviceBuffer&& o) noexcept { swap(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    DeviceBuffer tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr_ != nullptr && release_ != nullptr) release_(context_, ptr_);
  }

  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }

 private:
  void swap(DeviceBuffer& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    std::swap(release_, o.release_);
    std::swap(context_, o.context_);
  }
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  Release release_ = nullptr;
  void* context_ = nullptr;
};

struct MemoryInfo {
  uint64_t free_bytes = 0;   // what an allocation may still take (CPU: MemAvailable)
  uint64_t total_bytes = 0;  // the device's memory (CPU: MemTotal)
};

// --- the projections ----------------------------------------------------------------

enum class ActivationQuant : uint8_t {
  kNone,         // activations as given (fp32 holding bf16 or fp32 values)
  kFP8Block128,  // DeepSeek's act_quant: e4m3 per 1x128 block, power-of-two scales; K % 128 == 0
};

// y = x @ W^T over output features [row_begin, row_end) of W, for `rows` activation rows.
// A span of jobs is one grouped launch (routed experts, wo_a's groups, the projections
// that share an input); jobs are independent.
struct LinearJob {
  const LinearWeight* weight = nullptr;  // placed
  const float* x = nullptr;              // [rows, in_features], x_stride floats apart
  int64_t x_stride = 0;                  // 0 = in_features
  int64_t rows = 0;
  float* y = nullptr;                    // [rows, row_end - row_begin], y_stride floats apart
  int64_t y_stride = 0;                  // 0 = row_end - row_begin
  int64_t row_begin = 0;
  int64_t row_end = -1;                  // -1 = out_features
  ActivationQuant act = ActivationQuant::kNone;
  bool round_bf16 = false;               // store bf16 values (the reference's bf16 GEMM outputs); else fp32
};

// A job over `rows` whole rows of x and every output feature of W (no strides).
inline LinearJob linear_job(const LinearWeight* weight, const float* x, int64_t rows, float* y, ActivationQuant act,
                            bool round_bf16) {
  LinearJob j;
  j.weight = weight;
  j.x = x;
  j.rows = rows;
  j.y = y;
  j.act = act;
  j.round_bf16 = round_bf16;
  return j;
}

// --- a step's rows and the per-sequence state ---------------------------------------

// One sequence's rows of a step: rows [row_begin, row_end) are its new tokens at
// positions start_position, start_position + 1, ...; `slot` is its state slot.
struct SequenceSlice {
  int64_t row_begin = 0;
  int64_t row_end = 0;
  int64_t start_position = 0;
  float* slot = nullptr;  // device: the sequence's state (layout: AttentionStateLayout per layer)
};

// The step's row table, uploaded once per step by the model and shared by every layer.
struct StepRows {
  int64_t rows = 0;
  std::span<const SequenceSlice> slices;         // host copy: sizes and launch shapes
  const SequenceSlice* device_slices = nullptr;  // the same table on the device
  const int64_t* positions = nullptr;            // [rows] each row's position
  const int32_t* tokens = nullptr;               // [rows] each row's token id (checked < vocab by the model)
  int64_t max_position = 0;                      // the largest position of the step (host)
};

// Where one compressor keeps its state inside a slot, in floats from the slot's base.
// kv and score are the reference's kv_state / score_state [coff*ratio, coff*dim]: with
// overlap (ratio 4) rows [0, ratio) hold the previous complete window, [ratio, 2*ratio)
// the current one. A fresh slot has kv = 0 and score = -inf (see StatePool). Entries
// [capacity, dim] are the emitted entries; how many exist is (position + 1) / ratio
// after position has been ingested, so the state holds no counter.
struct CompressorStateLayout {
  int64_t kv = 0;
  int64_t score = 0;
  int64_t entries = 0;
  int64_t capacity = 0;  // entries the slot has room for
};

// One attention layer's state inside a slot: the window ring of raw KV [window,
// head_dim] (slot = position % window) and the compressors (capacity 0: none).
struct AttentionStateLayout {
  int64_t window = 0;
  CompressorStateLayout compressor;
  CompressorStateLayout index_compressor;
};

// --- op parameters ------------------------------------------------------------------

// X [rows, copies, dim] = the table rows of `tokens`, widened to fp32 (F16/F32 tables
// rounded to bf16 values), repeated `copies` times (hc_mult streams, or 1).
struct EmbedParams {
  const void* table = nullptr;  // placed TensorView, [vocab, dim] of `dtype`
  DType dtype = DType::BF16;    // BF16, F16 or F32
  int64_t vocab = 0, dim = 0, copies = 1;
  const int32_t* tokens = nullptr;  // [rows]
  int64_t rows = 0;
  float* out = nullptr;
};

// An mHC site (hc_attn_*, hc_ffn_*, hc_head_*): fn [m, hc*dim] run as a linear, base
// [m], scale [3] (or [1] for the head); m = (2+hc)*hc, or hc for the head.
struct HcSite {
  const LinearWeight* fn = nullptr;
  const float* base = nullptr;
  const float* scale = nullptr;
};

// Block.hc_pre: mixes = (X @ fn^T) * rsqrt(mean(X^2) + norm_eps); pre, post, comb by
// hc_split_sinkhorn (sigmoid + hc_eps, 2*sigmoid, softmax + hc_eps then `sinkhorn_iters`
// alternating normalizations, the first one over columns); u = bf16(sum_j pre_j X_j).
struct HcPreParams {
  HcSite site;
  int64_t rows = 0, dim = 0, hc = 0, sinkhorn_iters = 0;
  float norm_eps = 1e-6f, hc_eps = 1e-6f;
  const float* X = nullptr;  // [rows, hc, dim] bf16 values
  float* mixes = nullptr;    // scratch [rows, (2+hc)*hc]
  float* u = nullptr;        // [rows, dim]
  float* pre = nullptr;      // [rows, hc]
  float* post = nullptr;     // [rows, hc]
  float* comb = nullptr;     // [rows, hc, hc] comb[j*hc + k]: source stream j, destination k
};

// Block.hc_post: X[k] = bf16(post_k * y + sum_j comb[j][k] X[j]) per row, in place.
struct HcPostParams {
  int64_t rows = 0, dim = 0, hc = 0;
  const float* y = nullptr;  // [rows, dim]
  float* X = nullptr;        // [rows, hc, dim]
  const float* post = nullptr;
  const float* comb = nullptr;
};

// The final collapse of the rows `row_ids` of X: y[i] = bf16(sum_j (sigmoid(mix_j *
// scale + base_j) + hc_eps) X[row_ids[i]]_j), mixes as in hc_pre.
struct HcHeadParams {
  HcSite site;
  int64_t rows = 0, dim = 0, hc = 0;  // rows: entries of row_ids
  float norm_eps = 1e-6f, hc_eps = 1e-6f;
  const float* X = nullptr;          // [any, hc, dim]
  const int64_t* row_ids = nullptr;  // [rows]
  float* y = nullptr;                // [rows, dim]
};

// y = bf16(weight * (x * rsqrt(mean(x^2) + eps))) per row of `dim`; y may alias x.
struct RmsNormParams {
  int64_t rows = 0, dim = 0;
  float eps = 1e-6f;
  const float* x = nullptr;
  const float* weight = nullptr;  // [dim]
  float* y = nullptr;
};

// X[t, j, :] = bf16(X[t, j, :] + e[t, :]) for every stream j (the MTP block's input:
// h_proj(hnorm(h)) + e_proj(enorm(embed))).
struct AddToStreamsParams {
  int64_t rows = 0, dim = 0, hc = 0;
  const float* e = nullptr;  // [rows, dim]
  float* X = nullptr;        // [rows, hc, dim]
};

// RoPE: interleaved pairs on the last rope_dim values of a vector, angle = fp32
// position * freqs[i] (freqs: rope_dim / 2 values, YaRN already applied), rotations
// in fp32, results bf16.
//
// The per-row, per-head work of Attention.forward between the projections and the
// stateful part, all in place:
//  - q heads: unweighted per-head RMSNorm in bf16 arithmetic (bf16(x^2), mean, + eps,
//    rsqrt, product each rounded to bf16), then RoPE;
//  - kv: RMSNorm with kv_norm, RoPE, and under the QAT simulation the nope dims
//    [0, head_dim - rope_dim) through FP8 e4m3 with block 64;
//  - indexer (index_heads > 0): index_weights = bf16(w * index_head_dim^-0.5 *
//    index_heads^-0.5); each index_q head RoPE'd, and under the QAT simulation
//    Hadamard-rotated and through E2M1 with block 32.
// heads may be 0 (a DSpark draft's context: the kv row only).
struct AttentionHeadsParams {
  int64_t rows = 0, heads = 0, head_dim = 0, rope_dim = 0;
  float norm_eps = 1e-6f;
  bool qat_simulation = false;
  const int64_t* positions = nullptr;  // [rows]
  const float* rope_freqs = nullptr;   // [rope_dim / 2]
  float* q = nullptr;                  // [rows, heads, head_dim]
  float* kv = nullptr;                 // [rows, head_dim]
  const float* kv_norm = nullptr;      // [head_dim]
  int64_t index_heads = 0, index_head_dim = 0;
  float* index_q = nullptr;        // [rows, index_heads, index_head_dim]
  float* index_weights = nullptr;  // [rows, index_heads]
};

// One compressor (Compressor in DeepSeek's model.py) as attention_sequences drives it:
// token p's a = wkv x, z = wgate x (fp32, coff*dim each, coff = 2 with overlap)
// enter the state with z + ape[p % ratio]; when (p + 1) % ratio == 0 one entry is
// emitted: a per-feature softmax over the window's z weights the a values (with
// overlap: over the previous window's first half and this window's second half), the
// result rounded to bf16, RMS-normed with `norm`, RoPE'd at position p + 1 - ratio,
// and under the QAT simulation FP8-rounded on the nope dims (main) or
// Hadamard-rotated and E2M1-rounded (indexer), then rounded to bf16.
struct CompressorParams {
  int64_t ratio = 0;  // 0: this compressor does not exist
  int64_t dim = 0;
  bool overlap = false;
  const float* ape = nullptr;   // [ratio, coff*dim]
  const float* norm = nullptr;  // [dim]
  const float* a = nullptr;     // [rows, coff*dim] this step's wkv outputs
  const float* z = nullptr;     // [rows, coff*dim] this step's wgate outputs
  CompressorStateLayout state;
};

// The stateful walk of one attention layer, token by token within each sequence (the
// reference's prefill and decode alike). For row t at position p of a sequence:
//  1. indexer (index_compressor.ratio > 0): ingest p into the index compressor; score
//     every index entry c < (p+1)/4: bf16(sum_h bf16(bf16(relu(bf16(q_h . K_c))) * w_h))
//     and select the index_topk best (ties: lower index first);
//  2. write kv[t] into the window ring at p % window; ingest p into the compressor;
//  3. attention with a sink over the keys: the window positions max(0, p-window+1)..p,
//     then the selected compressed entries (indexer layers) or every emitted entry
//     (other compressed layers); K = V; s_j = softmax_scale * q_h . k_j;
//     o_h = bf16(sum_j bf16(exp(s_j - m)) k_j / (sum_j exp(s_j - m) + exp(sink_h - m)));
//  4. o_h's RoPE undone at p (inverse rotation).
struct AttentionSequencesParams {
  int64_t heads = 0, head_dim = 0, rope_dim = 0, window = 0;
  float norm_eps = 1e-6f;
  float softmax_scale = 0.0f;  // head_dim^-0.5
  bool qat_simulation = false;
  const float* rope_freqs = nullptr;  // [rope_dim / 2], the layer's
  const float* sink = nullptr;        // [heads] attn_sink
  const float* q = nullptr;           // [rows, heads, head_dim] from attention_heads
  const float* kv = nullptr;          // [rows, head_dim] from attention_heads
  int64_t window_offset = 0;          // the ring's place in each slot (floats), [window, head_dim]
  CompressorParams compressor;        // main compressor (ratio 0 on sliding-window layers)
  CompressorParams index_compressor;  // the indexer's (ratio 4 on CSA layers, else 0)
  int64_t index_heads = 0, index_head_dim = 0, index_topk = 0;
  const float* index_q = nullptr;        // [rows, index_heads, index_head_dim] from attention_heads
  const float* index_weights = nullptr;  // [rows, index_heads] from attention_heads
  float* out = nullptr;                  // [rows, heads, head_dim] bf16 values
};

// DSpark's target taps (DeepSeek's inference/model.py, Transformer.forward_spec:
// `h.mean(dim=2)`): y[t, :] = bf16(mean_j X[t, j, :]), the plain mean over the hc streams
// (fp32 sum in stream order, divided by hc), y_stride floats apart.
struct MeanStreamsParams {
  int64_t rows = 0, dim = 0, hc = 0;
  const float* X = nullptr;  // [rows, hc, dim]
  float* y = nullptr;        // [rows, y_stride]
  int64_t y_stride = 0;      // 0 = dim
};

// DSpark's draft attention (DSparkAttention in DeepSeek's inference/model.py): every query
// row of a sequence's block sees the same keys, with no causal mask: the context ring's
// positions max(0, s - window)..s - 1 (s = the slice's start_position; slot = position %
// window, at ring_offset in the sequence's slot), then all of the slice's own kv rows in
// order. K = V; scores, sink, bf16 rounding and the inverse RoPE at each row's position
// as in attention_sequences' step 3-4. Nothing is written to the state.
struct BlockAttentionParams {
  int64_t heads = 0, head_dim = 0, rope_dim = 0, window = 0;
  float softmax_scale = 0.0f;
  const float* rope_freqs = nullptr;  // [rope_dim / 2]
  const float* sink = nullptr;        // [heads]
  const float* q = nullptr;           // [rows, heads, head_dim] from attention_heads
  const float* kv = nullptr;          // [rows, head_dim] from attention_heads
  int64_t ring_offset = 0;            // the context ring's place in each slot (floats), [window, head_dim]
  float* out = nullptr;               // [rows, heads, head_dim] bf16 values
};

// The experts of one MoE layer.
struct ExpertLinears {
  const LinearWeight* w1 = nullptr;  // gate [I, D]
  const LinearWeight* w2 = nullptr;  // down [D, I]
  const LinearWeight* w3 = nullptr;  // up   [I, D]
};

// MoE.forward: logits = x @ gate^T in fp32; scores = sqrt(softplus(logits)); experts
// = tid2eid[token] (hash layers) or top-k of scores + bias (ties: lower id); weights =
// scores of the chosen, renormalized, times route_scale. Each routed expert: h =
// silu(min(w1 x, limit)) * clamp(w3 x, +-limit) (no clamp when limit is 0), times the
// routing weight, bf16, then w2; the shared expert the same without a routing weight.
// out = bf16(fp32 sum over the token's experts in ascending id + shared).
// Linears get ActivationQuant::kFP8Block128 where numerics.quantizes_input says so.
struct MoeParams {
  int64_t rows = 0, dim = 0, intermediate = 0, experts = 0, experts_per_token = 0;
  // The shared expert's intermediate size when it differs from the routed experts' (a
  // tensor-parallel rank under expert parallelism: routed experts whole, the shared one
  // split); 0: `intermediate`.
  int64_t shared_intermediate = 0;
  float route_scale = 1.0f;
  float swiglu_limit = 0.0f;
  Numerics numerics;
  const LinearWeight* gate = nullptr;       // [E, D], run in fp32
  const float* bias = nullptr;              // [E] learned routing; null on hash layers
  const int32_t* tid2eid = nullptr;         // [vocab, experts_per_token] hash routing; null otherwise
  std::span<const ExpertLinears> routed;    // host list of E experts
  // Host [E] or empty: 1 marks an all-zero stand-in for an expert another rank holds (expert
  // parallelism). It adds exactly 0, so a backend may skip it or run it.
  std::span<const uint8_t> absent;
  ExpertLinears shared;
  const float* x = nullptr;         // [rows, dim] bf16 values
  const int32_t* tokens = nullptr;  // [rows] (hash routing)
  float* out = nullptr;             // [rows, dim]
};

// --- the interface ------------------------------------------------------------------

class Backend {
 public:
  virtual ~Backend() = default;

  virtual DeviceKind kind() const = 0;
  // For the start-up line: "cpu (avx512, 16 threads)", "cuda: NVIDIA H100 80GB HBM3".
  virtual std::string description() const = 0;

  // Memory. allocate() throws Error when the device cannot give `bytes`.
  virtual MemoryInfo memory_info() const = 0;
  virtual DeviceBuffer allocate(size_t bytes) = 0;

  // Weight placement, once at model construction; placed data stays until the backend
  // is destroyed, and the host objects passed in must outlive it (the CPU backend
  // views them). placement_bytes says beforehand what the backend will hold for a
  // weight (CPU: 0, it reads the mapped checkpoint), for the fit check.
  virtual uint64_t placement_bytes(const LinearWeight& weight) const = 0;
  virtual uint64_t placement_bytes(const TensorView& table) const = 0;
  virtual void place(const LinearWeight& weight) = 0;
  virtual const void* place(const TensorView& table) = 0;  // embedding tables, as stored
  virtual const float* place(std::span<const float> values) = 0;
  virtual const int32_t* place(std::span<const int32_t> values) = 0;
  // Called after each placement with the bytes it stored (for a progress bar).
  using PlacementProgress = std::function<void(uint64_t bytes)>;
  virtual void set_placement_progress(PlacementProgress progress) = 0;

  // Copies and fills; copy_to_host waits for every op enqueued before it.
  virtual void copy_to_device(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t bytes) = 0;
  // Device to device, enqueued like an op (benchmarks measure the copy bandwidth with it).
  virtual void copy_on_device(void* dst, const void* src, size_t bytes) = 0;
  virtual void fill(float* dst, int64_t count, float value) = 0;
  virtual void synchronize() = 0;

  // The ops (see the params above).
  virtual void embed(const EmbedParams& p) = 0;
  virtual void hc_pre(const HcPreParams& p) = 0;
  virtual void hc_post(const HcPostParams& p) = 0;
  virtual void hc_head(const HcHeadParams& p) = 0;
  virtual void rms_norm(const RmsNormParams& p) = 0;
  virtual void add_to_streams(const AddToStreamsParams& p) = 0;
  // Checks every job (shapes, encodings, block alignment) and throws Error naming the
  // weight before running any.
  virtual void linear(std::span<const LinearJob> jobs) = 0;
  virtual void attention_heads(const AttentionHeadsParams& p) = 0;
  virtual void attention_sequences(const AttentionSequencesParams& p, const StepRows& rows) = 0;
  virtual void moe(const MoeParams& p) = 0;
  virtual void mean_streams(const MeanStreamsParams& p) = 0;
  virtual void block_attention(const BlockAttentionParams& p, const StepRows& rows) = 0;

  // Calibration (`quantize --calibrate-tokens`): the observer sees every linear's input
  // from now on (nullptr: none). A backend that cannot show inputs on the host throws Error.
  virtual void set_activation_observer(ActivationObserver* observer) = 0;
};

// The backend of `kind`; for kCuda on visible GPU `device`, which becomes the calling
// thread's current device. kCuda throws Error in a build without CUDA ("this build has no
// CUDA") or when that GPU is not visible.
std::unique_ptr<Backend> make_backend(DeviceKind kind, int device = 0);

// --device auto: cuda when the build has CUDA, a GPU is visible and the CUDA backend
// starts; else cpu.
std::unique_ptr<Backend> make_auto_backend();

}  // namespace fp4serve
