// The forward pass's ops on the GPU, as plain launch functions over device pointers (the
// CUDA backend composes them; tests/cuda checks each against the CPU op). Activations are
// fp32 buffers holding bf16 values wherever DeepSeek's inference/model.py stores a bf16
// tensor, so the rounding points are the CPU backend's (src/backend/cpu/) one for one. Every
// function enqueues on `stream` and returns at once; errors of the launch throw Error.
// Sizes the host needs (entries a compressor emits, keys a query sees) are functions of
// positions, so nothing here reads device memory back.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace fp4serve::cuda::ops {

// ---- weights of the exact linear ------------------------------------------------------
// How a linear's weight is stored for linear_exact (F16 checkpoints are widened to F32 at
// upload, exactly): the bytes are the checkpoint's layout (see formats/linear_weight.h).
enum class ExactWeightKind : int32_t { kBF16 = 0, kF32 = 1, kFP8Block = 2, kMXFP4 = 3, kNVFP4 = 4 };

struct ExactWeight {
  ExactWeightKind kind = ExactWeightKind::kBF16;
  const void* weight = nullptr;  // BF16/F32 [N, K]; FP8 E4M3 [N, K]; FP4 packed [N, K/2]
  const void* scale = nullptr;   // FP8: float [ceil(N/128), K/128]; MXFP4: E8M0 [N, K/32]; NVFP4: E4M3 [N, K/16]
  float global_scale = 1.0f;     // NVFP4
  int64_t n = 0, k = 0;
};

// y[m, n - row_begin] = (x[m] . W[n]) * global_scale for n in [row_begin, row_end), fp32
// accumulation, bf16-rounded when round_bf16. Strides in floats.
struct ExactLinear {
  ExactWeight w;
  const float* x = nullptr;
  int64_t x_stride = 0;
  int64_t rows = 0;
  float* y = nullptr;
  int64_t y_stride = 0;
  int64_t row_begin = 0, row_end = 0;
  bool round_bf16 = false;
};
void linear_exact(cudaStream_t stream, const ExactLinear& job);

// The routed experts' form: assignment a multiplies row a / x_row_divisor of x (the
// token of a (token, slot) pair: divisor k; the pair's own row: 1) by the weight
// weights[expert[a]] (device arrays), into y[a]. A table entry with a null weight (an
// expert another rank holds) gives zeros without reading anything.
void linear_exact_gathered(cudaStream_t stream, const ExactWeight* weights, const int32_t* expert, const float* x,
                           int64_t x_stride, int64_t x_row_divisor, int64_t rows, int64_t n, int64_t k, float* y,
                           bool round_bf16);

// DeepSeek's act_quant as quantize-dequantize: out = E4M3(clamp(x / s, +-448)) * s per block
// of `block` columns, s = 2^ceil(log2(max(amax, 1e-4) / 448)). x and out may alias.
void fp8_quantize_dequantize(cudaStream_t stream, const float* x, int64_t x_stride, int64_t rows, int64_t cols,
                             int64_t block, float* out, int64_t out_stride);

// ---- embedding, norms, small element-wise steps ----------------------------------------
enum class EmbedTable : int32_t { kBF16 = 0, kF16 = 1, kF32 = 2 };
// out[r, c, :] = bf16(table[tokens[r]]) for c < copies (the hc streams start equal).
void embed(cudaStream_t stream, const void* table, EmbedTable type, int64_t dim, const int32_t* tokens, int64_t rows,
           int64_t copies, float* out);

// y[r] = bf16(w * (x[r] * rsqrt(mean(x[r]^2) + eps))) for each row; y may alias x.
void rms_norm(cudaStream_t stream, const float* x, int64_t x_stride, const float* weight, int64_t rows, int64_t n,
              float eps, float* y, int64_t y_stride);

// Between the backend's fp32 activations and the Hopper GEMMs' bf16 operands (the values
// are bf16 already where the GEMMs take them, so both directions are exact).
void to_bf16(cudaStream_t stream, const float* x, int64_t x_stride, int64_t rows, int64_t cols, uint16_t* out);
void from_bf16(cudaStream_t stream, const uint16_t* y, int64_t rows, int64_t cols, float* out, int64_t out_stride);

// dst[0..count) = value.
void fill(cudaStream_t stream, float* dst, int64_t count, float value);

// x = bf16(x * scale) over n values (the indexer's head weights).
void scale_bf16(cudaStream_t stream, float* x, int64_t n, float scale);

// MTP's input mix: X[t, j] = bf16(X[t, j] + e[t]) for the hc streams of each row.
void add_broadcast_bf16(cudaStream_t stream, float* X, const float* e, int64_t rows, int64_t hc, int64_t dim);

// Gathers rows: out[i] = in[index[i]] (width floats each); index is a device array.
void gather_rows(cudaStream_t stream, const float* in, const int64_t* index, int64_t rows, int64_t width, float* out);

// ---- RoPE ------------------------------------------------------------------------------
// cos/sin [rows, rd/2] at positions[r] (device int64) with the frequencies freqs [rd/2].
void rope_angles(cudaStream_t stream, const float* freqs, int64_t rd, const int64_t* positions, int64_t rows,
                 float* cos, float* sin);

// The per-row preparation of attention, in the CPU backend's order (its attention.cpp):
//  q heads: head_rms_norm_bf16, then RoPE on the last rd dims;
//  kv: rms_norm with kv_norm, RoPE, FP8 QAT (block 64 over the nope dims) when qat;
//  indexer query heads: RoPE, then Hadamard + E2M1 (block 32) when qat.
struct AttentionPrep {
  float* q = nullptr;   // [rows, heads, hd]
  int64_t heads = 0, hd = 0, rd = 0;
  float* kv = nullptr;  // [rows, hd]
  const float* kv_norm = nullptr;
  float* index_q = nullptr;  // [rows, index_heads, index_hd] or null
  int64_t index_heads = 0, index_hd = 0;
  const float* cos = nullptr;  // [rows, rd/2]
  const float* sin = nullptr;
  int64_t rows = 0;
  float eps = 1e-6f;
  bool qat = false;
};
void attention_prep(cudaStream_t stream, const AttentionPrep& p);

// ---- mHC -------------------------------------------------------------------------------
// mixes[r, :m] *= rsqrt(mean(X[r]^2) + eps) over the width values of row r.
void hc_scale_mixes(cudaStream_t stream, const float* X, int64_t rows, int64_t width, float eps, float* mixes, int64_t m);
// Per row: pre, post, comb from mixes [(2+hc)*hc] (the CPU backend's hc_split_sinkhorn).
void hc_sinkhorn(cudaStream_t stream, const float* mixes, const float* scale, const float* base, int64_t rows,
                 int64_t hc, int64_t iters, float eps, float* pre, float* post, float* comb);
// The head's weights: pre[r, j] = sigmoid(mixes[r, j] * scale[0] + base[j]) + eps.
void hc_head_weights(cudaStream_t stream, const float* mixes, const float* scale, const float* base, int64_t rows,
                     int64_t hc, float eps, float* pre);
// u[r] = bf16(sum_j pre[r, j] X[r, j]).
void hc_collapse(cudaStream_t stream, const float* X, const float* pre, int64_t rows, int64_t dim, int64_t hc, float* u);
// X[r, k] = bf16(post[r, k] y[r] + sum_j comb[r, j, k] X[r, j]), in place.
void hc_post(cudaStream_t stream, const float* y, float* X, int64_t rows, int64_t dim, int64_t hc, const float* post,
             const float* comb);

// ---- the stateful attention of a step ---------------------------------------------------
// A sequence's state lives in one device block (its slot); each layer's parts sit at float
// offsets from the slot's base (backend/backend.h AttentionStateLayout): the window ring
// [W, hd] at position % W, and per compressor the reference's kv_state / score_state
// [coff*ratio, coff*dim] (with overlap rows [0, ratio) hold the previous complete window,
// [ratio, 2*ratio) the current one; z is stored with `ape` added) and the entries.
struct CompressorOffsets {
  int64_t kv = 0, score = 0, entries = 0;
};

// Row t of a step: its sequence's slot, where the sequence's rows begin in the step, and
// the positions of that run.
struct StepRow {
  float* slot = nullptr;
  int64_t row_begin = 0;  // first step row of the run
  int64_t start = 0;      // position of row_begin
  int64_t end = 0;        // one past the run's last position
  int64_t position = 0;   // this row's position
};

struct CompressorParams {
  int64_t ratio = 0, dim = 0;
  CompressorOffsets state;
  bool overlap = false;
  bool indexer = false;          // QAT: Hadamard + E2M1 (indexer) or FP8 on the nope dims (main)
  const float* ape = nullptr;    // [ratio, coff * dim]
  const float* norm = nullptr;   // [dim]
  const float* freqs = nullptr;  // RoPE frequencies [rd/2]
  int64_t rd = 0;
  float eps = 1e-6f;
  bool qat = false;
};

// An entry some row of the step emits ((position + 1) % ratio == 0): it becomes entry
// `index` of its sequence's compressor.
struct EmittedEntry {
  int32_t row = 0;
  int32_t index = 0;
};

// Pools, normalizes, ropes and (QAT) rounds every entry of `emitted` from the step's a/z
// rows [rows, coff*dim] and the state (the CPU backend's compressor_ingest).
void compressor_emit(cudaStream_t stream, const CompressorParams& p, const StepRow* rows, const float* a, const float* z,
                     const EmittedEntry* emitted, int64_t count);

// One run of a step, for compressor_store: its first row and positions.
struct StepRun {
  float* slot = nullptr;
  int64_t row_begin = 0, start = 0, end = 0;
};
// Leaves each run's state as the CPU's token-by-token ingest would (after compressor_emit):
// the current window's rows, and with overlap the last complete window's.
void compressor_store(cudaStream_t stream, const CompressorParams& p, const StepRun* runs, int64_t run_count,
                      const float* a, const float* z);

// The indexer: scores of each row's visible index entries ((position + 1) / ratio of them),
// score[c] = bf16(sum_h bf16(relu(bf16(q_h . K_c)) * w_h)), then the top k (ties: lower
// index), best first, into selected [rows, topk] (unused slots -1). scores is scratch of
// rows * max_entries floats.
void indexer_select(cudaStream_t stream, int64_t entries_offset, const StepRow* rows, int64_t row_count, const float* q, const float* weights, int64_t heads, int64_t dim, int64_t ratio, int64_t topk,
                    int64_t max_entries, float* scores, int32_t* selected);

struct SparseAttention {
  const float* q = nullptr;   // [rows, heads, hd], normed and roped
  const float* kv = nullptr;  // [rows, hd], this step's keys (= values)
  const float* sink = nullptr;  // [heads]
  const float* cos = nullptr;   // [rows, rd/2]: the query's angles (inverse RoPE of the output)
  const float* sin = nullptr;
  int64_t heads = 0, hd = 0, rd = 0, window = 0;
  int64_t ratio = 0;                  // 0: window only
  const int32_t* selected = nullptr;  // [rows, topk] from indexer_select, or null: every entry
  int64_t topk = 0;
  int64_t max_keys = 0;  // bound on the keys of any row (sizes `scores`)
  int64_t window_offset = 0, entries_offset = 0;  // in each slot
  float scale = 1.0f;
  float* scores = nullptr;  // scratch [rows * heads * max_keys]
  float* o = nullptr;       // [rows, heads, hd]
};
// o = softmax-with-sink attention over the window (from kv for positions >= start, else
// the ring) and the selected (or all) compressed entries, then inverse RoPE.
void sparse_attention(cudaStream_t stream, const SparseAttention& p, const StepRow* rows, int64_t row_count);
// Writes each run's last W keys into its window ring (after sparse_attention).
void window_store(cudaStream_t stream, int64_t window_offset, const StepRow* rows, int64_t row_count, const float* kv,
                  int64_t hd, int64_t window);

// ---- MoE ---------------------------------------------------------------------------------
// Routing: scores = sqrt(softplus(logits)); experts from tid2eid[tokens[t]] (when given)
// or the top k of scores + bias (ties: lower id); weights = scores / sum * route_scale.
void moe_route(cudaStream_t stream, const float* logits, int64_t rows, int64_t experts, int64_t k, const float* bias,
               const int32_t* tid2eid, const int32_t* tokens, float route_scale, int32_t* selected, float* weights);
// mid[a] = bf16(w[a] * silu(min(g, L)) * clamp(u, -L, L)) (w = 1 when null, L <= 0: no clamp).
void swiglu(cudaStream_t stream, const float* g, const float* u, const float* route_weight, int64_t rows, int64_t width,
            float limit, float* mid);
// out[t] = bf16(sum over t's experts in ascending id of down[t*k + slot] + shared[t]).
void moe_combine(cudaStream_t stream, const float* down, const float* shared, const int32_t* selected, int64_t rows,
                 int64_t k, int64_t dim, float* out);

}  // namespace fp4serve::cuda::ops
