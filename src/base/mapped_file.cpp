#include "base/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/error.h"
#include "base/huge_pages.h"

namespace fp4serve {
namespace {

// Closes the descriptor on every path out of open(): the mapping does not need it.
struct FileDescriptor {
  int fd;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  FileDescriptor file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  struct stat info {};
  if (::fstat(file.fd, &info) != 0) fail("{}: cannot stat: {}", path, std::strerror(errno));
  if (!S_ISREG(info.st_mode)) fail("{}: not a regular file", path);
  const auto size = static_cast<size_t>(info.st_size);
  if (size == 0) return std::shared_ptr<MappedFile>(new MappedFile(path, nullptr, 0));
  void* mapped = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, file.fd, 0);
  if (mapped == MAP_FAILED) fail("{}: cannot mmap {} bytes: {}", path, size, std::strerror(errno));
  // Before anything reads it: the page cache then fills the mapping in huge folios where
  // the filesystem supports them, and decode streams the weights with fewer TLB misses.
  advise_huge_pages(mapped, size);
  return std::shared_ptr<MappedFile>(new MappedFile(path, static_cast<const std::byte*>(mapped), size));
}

MappedFile::MappedFile(std::string path, const std::byte* data, size_t size)
    : path_(std::move(path)), data_(data), size_(size) {}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
}

void MappedFile::advise(Access access, size_t offset, size_t length) const {
  if (data_ == nullptr || offset >= size_) return;
  length = std::min(length, size_ - offset);
  // madvise wants a page-aligned start: widen the range down to its page.
  const auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t aligned = offset / page * page;
  const int advice = access == Access::Sequential ? MADV_SEQUENTIAL : MADV_WILLNEED;
  ::madvise(const_cast<std::byte*>(data_) + aligned, length + (offset - aligned), advice);
}

}  // namespace fp4serve
