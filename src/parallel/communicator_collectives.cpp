#include "parallel/communicator_collectives.h"

#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "formats/number_formats.h"

namespace fp4serve {

CommunicatorCollectives::CommunicatorCollectives(Backend& backend, Communicator& communicator,
                                                 std::vector<int64_t> vocab_columns)
    : backend_(backend), comm_(communicator), vocab_columns_(std::move(vocab_columns)) {
  FP4SERVE_CHECK(static_cast<int>(vocab_columns_.size()) == comm_.size(),
                 "collectives: {} vocabulary slices for {} ranks", vocab_columns_.size(), comm_.size());
  FP4SERVE_CHECK(!(backend_.kind() == DeviceKind::kCpu && comm_.device_memory()),
                 "collectives: a CPU rank cannot use a communicator over device memory (NCCL)");
  for (int64_t c : vocab_columns_) widest_ = std::max(widest_, c);
}

bool CommunicatorCollectives::staged() const { return backend_.kind() != DeviceKind::kCpu && !comm_.device_memory(); }

void CommunicatorCollectives::sum_bf16(float* data, int64_t rows, int64_t width) {
  const int64_t count = rows * width;
  if (count == 0) return;
  const size_t n = static_cast<size_t>(count);
  if (!comm_.device_memory()) {
    float* host = data;
    if (staged()) {
      host_.resize(n);
      backend_.copy_to_host(host_.data(), data, n * sizeof(float));
      host = host_.data();
    }
    comm_.all_reduce_sum(host, n, CommType::kF32);
    for (size_t i = 0; i < n; ++i) host[i] = round_bf16(host[i]);
    if (staged()) backend_.copy_to_device(data, host, n * sizeof(float));
    return;
  }
  // NCCL on the rank's own stream: the backend's work first, then the sum, then the
  // rounding as an op of the backend (bf16(x + 0) per element).
  backend_.synchronize();
  comm_.all_reduce_sum(data, n, CommType::kF32);
  comm_.synchronize();
  if (count > zeros_count_) {
    zeros_ = backend_.allocate(n * sizeof(float));
    backend_.fill(zeros_.as<float>(), count, 0.0f);
    zeros_count_ = count;
  }
  backend_.add_to_streams(AddToStreamsParams{rows, width, 1, zeros_.as<float>(), data});
}

void CommunicatorCollectives::gather_vocabulary(const float* local, int64_t rows, std::vector<float>& logits) {
  const int ranks = comm_.size();
  const int64_t mine = vocab_columns_[static_cast<size_t>(comm_.rank())];
  const size_t slice = static_cast<size_t>(rows * widest_);  // each rank's [rows, its columns], padded
  gathered_.resize(slice * static_cast<size_t>(ranks));
  if (!comm_.device_memory()) {
    host_.resize(slice);
    backend_.copy_to_host(host_.data(), local, static_cast<size_t>(rows * mine) * sizeof(float));
    comm_.all_gather(host_.data(), gathered_.data(), slice, CommType::kF32);
  } else {
    const size_t bytes = slice * sizeof(float);
    if (send_.bytes() < bytes) {
      send_ = backend_.allocate(bytes);
      recv_ = backend_.allocate(bytes * static_cast<size_t>(ranks));
    }
    backend_.copy_on_device(send_.data(), local, static_cast<size_t>(rows * mine) * sizeof(float));
    backend_.synchronize();
    comm_.all_gather(send_.data(), recv_.data(), slice, CommType::kF32);
    comm_.synchronize();
    backend_.copy_to_host(gathered_.data(), recv_.data(), bytes * static_cast<size_t>(ranks));
  }
  int64_t vocab = 0;
  for (int64_t c : vocab_columns_) vocab += c;
  const size_t at = logits.size();
  logits.resize(at + static_cast<size_t>(rows * vocab));
  for (int64_t r = 0; r < rows; ++r) {
    float* row = logits.data() + at + static_cast<size_t>(r * vocab);
    for (int p = 0; p < ranks; ++p) {
      const int64_t cols = vocab_columns_[static_cast<size_t>(p)];
      std::memcpy(row, gathered_.data() + static_cast<size_t>(p) * slice + static_cast<size_t>(r * cols),
                  static_cast<size_t>(cols) * sizeof(float));
      row += cols;
    }
  }
}

}  // namespace fp4serve
