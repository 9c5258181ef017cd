// The model's RankCollectives (model/rank_collectives.h) over a Communicator, for a model
// on `backend`. Where the communicator works in host memory (in-process) and the backend
// on a device (CUDA ranks sharing one GPU, or several without NCCL), each operation is
// staged through the host: copy back, combine, copy in. A host backend with a host
// communicator, or a device backend with NCCL, combines in place.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "model/rank_collectives.h"
#include "parallel/communicator.h"

namespace fp4serve {

class CommunicatorCollectives final : public RankCollectives {
 public:
  // vocab_columns[r]: the vocabulary rows (logit columns) rank r's head holds. Throws
  // Error when a CPU backend is paired with a device communicator.
  CommunicatorCollectives(Backend& backend, Communicator& communicator, std::vector<int64_t> vocab_columns);

  void sum_bf16(float* data, int64_t rows, int64_t width) override;
  void gather_vocabulary(const float* local, int64_t rows, std::vector<float>& logits) override;

 private:
  bool staged() const;

  Backend& backend_;
  Communicator& comm_;
  std::vector<int64_t> vocab_columns_;
  int64_t widest_ = 0;          // the most columns any rank holds: the gather's slice per row
  std::vector<float> host_, gathered_;
  DeviceBuffer zeros_, send_, recv_;  // device path: the bf16 rounding's addend, the gather's buffers
  int64_t zeros_count_ = 0;
};

}  // namespace fp4serve
