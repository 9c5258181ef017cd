#include "io/ranged_read.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "base/error.h"

namespace fp4serve {

struct RangedReader::Impl {
  struct File {
    const SafetensorsFile* file;
    int fd;
  };
  std::vector<File> files;  // sorted by mapped address
  std::atomic<uint64_t> asked{0}, read{0};

  // The file whose mapping holds `tensor`, and the tensor's offset in it.
  const File& locate(const TensorView& tensor, uint64_t* offset) const {
    auto it = std::upper_bound(files.begin(), files.end(), tensor.data,
                               [](const std::byte* p, const File& f) { return p < f.file->mapped_data(); });
    if (it != files.begin()) {
      const File& f = *(it - 1);
      const std::byte* base = f.file->mapped_data();
      if (tensor.data >= base && tensor.data + tensor.nbytes <= base + f.file->file_size()) {
        *offset = static_cast<uint64_t>(tensor.data - base);
        return f;
      }
    }
    fail("{}: not a tensor of this checkpoint's files (cannot read it by range)", tensor.origin);
  }

  void pread_all(const File& f, std::byte* out, uint64_t size, uint64_t at, const TensorView& tensor) {
    read += size;
    while (size > 0) {
      const ssize_t n = ::pread(f.fd, out, std::min<uint64_t>(size, uint64_t{1} << 30), static_cast<off_t>(at));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        fail("{}: reading {} bytes at offset {} of {} failed: {}", tensor.origin, size, at, f.file->path(),
             n < 0 ? std::strerror(errno) : "end of file");
      out += n;
      at += static_cast<uint64_t>(n);
      size -= static_cast<uint64_t>(n);
    }
  }
};

RangedReader::RangedReader(const TensorSource& source) : impl_(std::make_unique<Impl>()) {
  for (const auto& file : source.files()) {
    const int fd = ::open(file->path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      for (const auto& f : impl_->files) ::close(f.fd);
      fail("{}: cannot open for reading: {}", file->path(), std::strerror(errno));
    }
    impl_->files.push_back({file.get(), fd});
  }
  std::sort(impl_->files.begin(), impl_->files.end(),
            [](const Impl::File& a, const Impl::File& b) { return a.file->mapped_data() < b.file->mapped_data(); });
}

RangedReader::~RangedReader() {
  for (const auto& f : impl_->files) ::close(f.fd);
}

void RangedReader::read(const ByteRuns& runs, std::byte* out) {
  if (runs.count == 0 || runs.length == 0) return;
  const TensorView& t = *runs.tensor;
  const uint64_t span_end = runs.offset + (runs.count - 1) * runs.stride + runs.length;
  if ((runs.count > 1 && runs.stride < runs.length) || span_end > t.nbytes)
    fail("{}: byte runs (offset {}, {} x {} bytes every {}) leave the tensor's {} bytes", t.origin, runs.offset,
         runs.count, runs.length, runs.stride, t.nbytes);
  uint64_t base = 0;
  const Impl::File& f = impl_->locate(t, &base);
  impl_->asked += runs.bytes();
  const uint64_t gap = runs.stride - runs.length;
  if (runs.count == 1 || gap == 0) {
    impl_->pread_all(f, out, runs.bytes(), base + runs.offset, t);
    return;
  }
  if (gap > kMergeGap) {
    for (uint64_t i = 0; i < runs.count; ++i)
      impl_->pread_all(f, out + i * runs.length, runs.length, base + runs.offset + i * runs.stride, t);
    return;
  }
  // Read through the gaps in pieces of about 16 MiB, keeping only the runs.
  const uint64_t per_piece = std::max<uint64_t>(1, (uint64_t{16} << 20) / runs.stride);
  std::vector<std::byte> piece;
  for (uint64_t first = 0; first < runs.count; first += per_piece) {
    const uint64_t n = std::min(per_piece, runs.count - first);
    const uint64_t size = (n - 1) * runs.stride + runs.length;
    piece.resize(size);
    impl_->pread_all(f, piece.data(), size, base + runs.offset + first * runs.stride, t);
    for (uint64_t i = 0; i < n; ++i)
      std::memcpy(out + (first + i) * runs.length, piece.data() + i * runs.stride, runs.length);
  }
}

uint64_t RangedReader::bytes_asked() const { return impl_->asked; }
uint64_t RangedReader::bytes_read() const { return impl_->read; }

}  // namespace fp4serve
