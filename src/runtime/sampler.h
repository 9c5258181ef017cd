// Next-token sampling with the OpenAI/vLLM knobs, for the server and for
// `fp4serve generate`. Each sequence owns its sampler; randomness is a pure
// function of (seed, index of the token), so a seeded request gives the same
// tokens however it is batched.
//
// Order of processing (vLLM's): raw logits -> logprobs (reported from the raw
// logits, vLLM's default) -> logit_bias -> repetition, frequency and presence
// penalties -> temperature (0 = greedy) -> min_p -> top_k -> top_p -> draw.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace fp4serve::runtime {

struct SamplingParams {
  double temperature = 1.0;  // 0: greedy (argmax, ties to the lowest id)
  double top_p = 1.0;        // (0, 1]: keep the most likely tokens whose mass reaches top_p
  int top_k = 0;             // 0: off; else keep the k most likely tokens
  double min_p = 0.0;        // [0, 1]: drop tokens less likely than min_p * p(most likely)
  double presence_penalty = 0.0;    // subtracted once from tokens already generated
  double frequency_penalty = 0.0;   // subtracted per occurrence among generated tokens
  double repetition_penalty = 1.0;  // divides positive / multiplies negative logits of seen tokens
  std::vector<std::pair<int32_t, double>> logit_bias;
  uint64_t seed = 0;
  int top_logprobs = -1;  // < 0: no logprobs; else the sampled token's plus this many alternatives
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
};

struct SampledToken {
  int32_t token = 0;
  float logprob = 0;                       // raw log-softmax of the sampled token (when requested)
  std::vector<TokenLogprob> top_logprobs;  // most likely first
};

struct TokenProbability {
  int32_t token = 0;
  double probability = 0;
};

// Tokens the penalties look at.
struct PenaltyHistory {
  std::unordered_map<int32_t, int> generated_counts;
  std::unordered_set<int32_t> prompt_tokens;  // filled only when a repetition penalty is set
};

// The distribution the next token is drawn from, as (token, probability) pairs
// in ascending token order, probabilities summing to 1. Greedy gives one pair.
std::vector<TokenProbability> next_token_distribution(std::span<const float> logits, const SamplingParams& params,
                                                      const PenaltyHistory& history);

// The uniform [0, 1) number used to draw the `index`-th token of a stream.
double sampling_uniform(uint64_t seed, uint64_t index);

// Picks from a distribution with a uniform u: the first token (in ascending
// id order) at which the cumulative probability exceeds u.
int32_t draw_token(std::span<const TokenProbability> distribution, double u);

// Log-softmax of `token` and the `n` most likely tokens of raw logits.
SampledToken raw_logprobs(std::span<const float> logits, int32_t token, int n);

// Throws Error naming the first parameter outside its range (the server checks
// requests earlier, with OpenAI's ranges and error objects).
void check_sampling_params(const SamplingParams& params);

class SequenceSampler {
 public:
  SequenceSampler(SamplingParams params, std::span<const int32_t> prompt);  // checks the params

  // Samples the next token and records it for the penalties.
  SampledToken sample(std::span<const float> logits);
  const SamplingParams& params() const { return params_; }

  // Speculative decoding (runtime/speculative_sampling.h). The distribution of the token
  // after `pending` (tokens drawn but not yet committed, e.g. earlier drafted positions),
  // from `logits`, as sample() would draw it once those tokens were committed.
  std::vector<TokenProbability> distribution(std::span<const float> logits, std::span<const int32_t> pending) const;
  // Records `token` as sample() would have (penalties, the token count); logprobs from `logits`.
  SampledToken commit(std::span<const float> logits, int32_t token);
  // The next uniform [0, 1) of the speculative stream (draft draws, acceptance tests,
  // residual draws): a pure function of (seed, index), apart from sample()'s stream.
  double speculative_uniform();

 private:
  SamplingParams params_;
  PenaltyHistory history_;
  uint64_t drawn_ = 0;
  uint64_t speculative_drawn_ = 0;
};

}  // namespace fp4serve::runtime
