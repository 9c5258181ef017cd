// Reading parts of tensors with pread instead of through the mapping: a rank of a
// sharded model reads its own bytes of each shard and nothing else (the mapping would
// fault in whole readahead windows around every access). Runs of bytes close together
// are read as one request and cut apart in memory, since the disk reads whole pages and
// a request per 96-byte run of a column slice would cost more than the bytes between.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "base/tensor.h"
#include "io/safetensors.h"

namespace fp4serve {

// `count` runs of `length` bytes, `stride` apart, starting `offset` bytes into `tensor`.
struct ByteRuns {
  const TensorView* tensor = nullptr;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t count = 1;
  uint64_t stride = 0;
  uint64_t bytes() const { return length * count; }
};

class RangedReader {
 public:
  // Gaps of at most this many bytes between runs are read through rather than skipped.
  static constexpr uint64_t kMergeGap = uint64_t{64} << 10;

  // Opens every shard file of `source` for pread. Throws Error naming a file it cannot open.
  explicit RangedReader(const TensorSource& source);
  ~RangedReader();
  RangedReader(const RangedReader&) = delete;
  RangedReader& operator=(const RangedReader&) = delete;

  // Copies the runs, back to back, into out (runs.bytes() bytes). Throws Error naming the
  // tensor when the runs leave it or the file is short. Safe to call from several threads.
  void read(const ByteRuns& runs, std::byte* out);

  // Bytes asked for, and bytes requested from the files (the asked-for ones plus merged gaps).
  uint64_t bytes_asked() const;
  uint64_t bytes_read() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fp4serve
