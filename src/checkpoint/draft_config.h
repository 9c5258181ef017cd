// Which speculative-decoding module a checkpoint carries under `mtp.*`, and its shape.
//
// DeepSeek's releases use `mtp.*` for two different things:
//   - the preview V4-Flash / V4-Pro (and NVIDIA's NVFP4 exports of them): one classic MTP block,
//     mtp.0.{e_proj, h_proj, enorm, hnorm, norm, hc_head_*} around one V4 block;
//   - V4-{Flash,Pro}-DSpark, V4-Flash-0731, V4-Pro-0813 (and NVIDIA's NVFP4 exports of those):
//     a DSpark drafter of several stages mtp.0 .. mtp.{S-1}, stage 0 adding main_proj/main_norm,
//     the last stage norm, hc_head_*, markov_head.markov_w{1,2} and confidence_head.proj.
// Their config.json still says `num_nextn_predict_layers: 1`, so that key cannot tell them apart.
// The rule, as vLLM and TensorRT-LLM apply it (vllm-project/vllm#41834, TensorRT-LLM's
// `modeling_dspark.py` count_dspark_stages): DSpark when config.json has `dspark_*` keys or the
// index holds `mtp.0.main_proj.weight`; the stage count comes from the index (distinct mtp.N),
// never from num_nextn_predict_layers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fp4serve {

class TensorSource;

// What the tensor names (and a few header shapes) say about `mtp.*`. All names under
// `mtp.` are DeepSeek's in every naming scheme.
struct DraftEvidence {
  bool known = false;            // false: no index was looked at (a config parsed on its own)
  bool dspark_tensors = false;   // mtp.0.main_proj.weight
  bool mtp_tensors = false;      // mtp.0.e_proj.weight (classic MTP)
  int64_t stages = 0;            // 1 + the largest J of any mtp.J.* name (0: none)
  int64_t main_proj_in = 0;      // in-features of mtp.0.main_proj (stored shape; 0 if absent)
  int64_t markov_rank = 0;       // columns of mtp.{S-1}.markov_head.markov_w1.weight (0 if absent)
  std::string origin;            // the file or index the names came from, for messages
};

// Collects the evidence from the stored names (and the header shapes of main_proj and markov_w1).
DraftEvidence draft_evidence(const TensorSource& source);

// The dspark_* keys of DeepSeek's config.json (HF and inference/config.json spell them alike).
inline constexpr const char* kDsparkKeys[] = {"dspark_block_size", "dspark_noise_token_id", "dspark_target_layer_ids",
                                              "dspark_markov_rank"};

// The values DeepSeek's released DSpark configs carry, used when a DSpark draft is found in the
// index but config.json has no dspark_* keys (a warning lists what was assumed).
inline constexpr int64_t kReleasedDsparkBlockSize = 5;          // V4-Flash-0731 / V4-Pro-0813 config.json
inline constexpr int64_t kReleasedDsparkNoiseTokenId = 128799;  // in DeepSeek-V4's 129,280-token vocabulary
inline constexpr int64_t kDeepSeekV4VocabSize = 129280;

}  // namespace fp4serve
