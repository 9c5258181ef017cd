// A whole file mapped read-only into memory (RAII). The safetensors reader hands
// out views into the mapping, so tensors cost no copy and no read until touched;
// a shared_ptr to the MappedFile keeps the bytes valid for as long as any view lives.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace fp4serve {

class MappedFile {
 public:
  // Maps `path` (a regular file) read-only. An empty file maps to size 0 and a
  // null data pointer. Throws Error naming the path and the system's reason.
  static std::shared_ptr<MappedFile> open(const std::string& path);

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const std::string& path() const { return path_; }
  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }

  // Kernel hints for the readahead of [offset, offset + length) (clipped to the
  // file); they never fail the caller, as they only change speed.
  enum class Access { Sequential, WillNeed };
  void advise(Access access, size_t offset, size_t length) const;

 private:
  MappedFile(std::string path, const std::byte* data, size_t size);

  std::string path_;
  const std::byte* data_;
  size_t size_;
};

}  // namespace fp4serve
