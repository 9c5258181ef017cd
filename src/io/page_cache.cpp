#include "io/page_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "base/error.h"
#include "base/mapped_file.h"

namespace fp4serve {

double page_cache_residency(const std::string& path) {
  auto mapped = MappedFile::open(path);
  if (mapped->size() == 0) return 1.0;
  const auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t pages = (mapped->size() + page - 1) / page;
  std::vector<unsigned char> resident(pages);
  if (::mincore(const_cast<std::byte*>(mapped->data()), mapped->size(), resident.data()) != 0) {
    fail("{}: mincore failed: {}", path, std::strerror(errno));
  }
  size_t cached = 0;
  for (unsigned char r : resident) cached += r & 1;
  return static_cast<double>(cached) / static_cast<double>(pages);
}

void evict_from_page_cache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  // Dirty pages cannot be dropped; write them back first.
  ::fdatasync(fd);
  const int status = ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  if (status != 0) fail("{}: posix_fadvise(DONTNEED) failed: {}", path, std::strerror(status));
}

void drop_all_page_caches() {
  ::sync();
  std::ofstream control("/proc/sys/vm/drop_caches");
  control << "1\n";
  control.close();
  if (!control) fail("/proc/sys/vm/drop_caches: cannot write (needs root and a writable /proc/sys)");
}

}  // namespace fp4serve
