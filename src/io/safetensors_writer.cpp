// write_safetensors: header, space padding to an 8-byte boundary, contiguous data;
// written to a temporary file and renamed into place.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "base/error.h"
#include "io/safetensors.h"

namespace fp4serve {
namespace {

// Removes the temporary file unless the write got as far as renaming it.
class TemporaryFile {
 public:
  explicit TemporaryFile(const std::string& final_path) : path_(final_path + ".tmp.XXXXXX") {
    fd_ = ::mkstemp(path_.data());
    if (fd_ < 0) fail("{}: cannot create a temporary file beside it: {}", final_path, std::strerror(errno));
  }
  ~TemporaryFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!renamed_) ::unlink(path_.c_str());
  }

  void write(const std::byte* data, size_t size, const std::string& final_path) {
    while (size > 0) {
      const ssize_t written = ::write(fd_, data, std::min<size_t>(size, size_t{1} << 30));
      if (written < 0 && errno == EINTR) continue;
      if (written <= 0) fail("{}: write failed: {}", final_path, std::strerror(written < 0 ? errno : EIO));
      data += written;
      size -= static_cast<size_t>(written);
    }
  }

  // Leaves `size` bytes unwritten (a hole in a sparse file).
  void skip(uint64_t size, const std::string& final_path) {
    if (::lseek(fd_, static_cast<off_t>(size), SEEK_CUR) < 0)
      fail("{}: cannot seek past {} bytes: {}", final_path, size, std::strerror(errno));
  }

  // Sets the file's length to the current position (a trailing hole has no bytes written).
  void end_here(const std::string& final_path) {
    const off_t at = ::lseek(fd_, 0, SEEK_CUR);
    if (at < 0 || ::ftruncate(fd_, at) != 0) fail("{}: cannot set the file length: {}", final_path, std::strerror(errno));
  }

  void commit(const std::string& final_path) {
    // mkstemp made the file private (0600); a checkpoint is shared like any other file.
    if (::fchmod(fd_, 0644) != 0 || ::fsync(fd_) != 0) fail("{}: cannot flush: {}", final_path, std::strerror(errno));
    const int status = ::close(fd_);
    fd_ = -1;
    if (status != 0) fail("{}: close failed: {}", final_path, std::strerror(errno));
    if (::rename(path_.c_str(), final_path.c_str()) != 0) {
      fail("{}: cannot rename {} into place: {}", final_path, path_, std::strerror(errno));
    }
    renamed_ = true;
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool renamed_ = false;
};

void check_tensor(const NamedTensor& t, const std::string& path, MissingData missing_data) {
  if (t.name == "__metadata__") fail("{}: '__metadata__' is reserved and cannot name a tensor", path);
  uint64_t bytes = dtype_size(t.tensor.dtype);
  for (int64_t d : t.tensor.shape) {
    if (d < 0) fail("{}: tensor '{}': negative dimension in shape {}", path, t.name, shape_string(t.tensor.shape));
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes)) {
      fail("{}: tensor '{}': shape {} overflows 64-bit byte counts", path, t.name, shape_string(t.tensor.shape));
    }
  }
  if (bytes != t.tensor.nbytes) {
    fail("{}: tensor '{}': dtype {} x shape {} needs {} bytes, but the view holds {}", path, t.name,
         dtype_name(t.tensor.dtype), shape_string(t.tensor.shape), bytes, t.tensor.nbytes);
  }
  if (bytes > 0 && t.tensor.data == nullptr && missing_data == MissingData::kError)
    fail("{}: tensor '{}': no data", path, t.name);
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata, MissingData missing_data) {
  std::set<std::string> names;
  for (const auto& t : tensors) {
    check_tensor(t, path, missing_data);
    if (!names.insert(t.name).second) fail("{}: tensor '{}' given twice", path, t.name);
  }

  // Largest element size first: each tensor's byte length is a multiple of its
  // element size, so every offset stays a multiple of the element size after it.
  std::vector<const NamedTensor*> order;
  order.reserve(tensors.size());
  for (const auto& t : tensors) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const NamedTensor* a, const NamedTensor* b) {
    return dtype_size(a->tensor.dtype) > dtype_size(b->tensor.dtype);
  });

  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const NamedTensor* t : order) {
    header[t->name] = {{"dtype", std::string(dtype_name(t->tensor.dtype))},
                       {"shape", t->tensor.shape},
                       {"data_offsets", {offset, offset + t->tensor.nbytes}}};
    offset += t->tensor.nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: cannot encode the header (tensor names and metadata must be UTF-8): {}", path, e.what());
  }
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');

  std::byte length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<std::byte>((uint64_t{text.size()} >> (8 * i)) & 0xFF);

  TemporaryFile file(path);
  file.write(length, sizeof(length), path);
  file.write(reinterpret_cast<const std::byte*>(text.data()), text.size(), path);
  for (const NamedTensor* t : order) {
    if (t->tensor.data == nullptr) {
      file.skip(t->tensor.nbytes, path);
    } else {
      file.write(t->tensor.data, t->tensor.nbytes, path);
    }
  }
  file.end_here(path);
  file.commit(path);
}

}  // namespace fp4serve
