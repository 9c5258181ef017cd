// What a model built for one rank of a tensor-parallel group needs from the others, in
// the model's terms (the Communicator behind it lives in src/parallel; the model never
// sees it). Every rank of the group calls the same methods in the same order, once per
// op of the step, as the collectives underneath require.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/weights.h"

namespace fp4serve {

class RankCollectives {
 public:
  virtual ~RankCollectives() = default;

  // data [rows, width] (device): every rank's partial values summed in rank order, then
  // rounded to bf16 values (what the unsharded op stores), in place on every rank.
  virtual void sum_bf16(float* data, int64_t rows, int64_t width) = 0;

  // local [rows, this rank's vocabulary columns] (device) -> `logits` (host) gains rows x
  // vocab_size floats, each row the ranks' columns side by side in rank order.
  virtual void gather_vocabulary(const float* local, int64_t rows, std::vector<float>& logits) = 0;
};

// How a Model is cut for its rank: the vocabulary rows of embed.weight and head it holds
// (its embed table carries one more row of zeros, where every token of another rank's
// rows looks up), its part of the shared expert, the zero expert that stands in for
// other ranks' experts, and the collectives that join its partial results. No
// collectives: the whole model.
struct ModelShard {
  RankCollectives* collectives = nullptr;
  int64_t vocab_begin = 0, vocab_end = 0;
  int64_t shared_intermediate = -1;  // the shared expert's part (-1: the config's intermediate size)
  const std::map<std::string, ExpertWeights>* absent_experts = nullptr;  // ResolveOptions'
};

}  // namespace fp4serve
