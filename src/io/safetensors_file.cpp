// SafetensorsFile: a validated header over bytes that someone else keeps alive
// (a MappedFile, or the fuzzer's buffer). Tensor views point straight into them.
#include <unordered_map>

#include "base/error.h"
#include "base/mapped_file.h"
#include "io/safetensors.h"
#include "io/safetensors_header.h"

namespace fp4serve {

struct SafetensorsFile::Impl {
  std::string path;
  const std::byte* data = nullptr;
  size_t size = 0;
  std::vector<std::string> names;
  // Node-based, so TensorSource may keep pointers to the views.
  std::unordered_map<std::string, TensorView> tensors;
  std::map<std::string, std::string> metadata;
};

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<MappedFile> mapped = MappedFile::open(path);
  const std::byte* data = mapped->data();
  const size_t size = mapped->size();
  return from_bytes(std::move(mapped), data, size, path);
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::from_bytes(std::shared_ptr<const void> owner, const std::byte* data,
                                                             size_t size, const std::string& label) {
  SafetensorsHeader header = parse_safetensors_header(data, size, label);
  auto impl = std::make_shared<Impl>();
  impl->path = label;
  impl->data = data;
  impl->size = size;
  impl->metadata = std::move(header.metadata);
  impl->names.reserve(header.tensors.size());
  impl->tensors.reserve(header.tensors.size());
  for (auto& entry : header.tensors) {
    TensorView view;
    view.dtype = entry.dtype;
    view.shape = std::move(entry.shape);
    view.data = data + header.data_start + entry.begin;
    view.nbytes = entry.end - entry.begin;
    view.owner = owner;
    view.origin = label + ": " + entry.name;
    impl->names.push_back(entry.name);
    impl->tensors.emplace(std::move(entry.name), std::move(view));
  }
  auto file = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  file->impl_ = std::move(impl);
  return file;
}

const std::string& SafetensorsFile::path() const { return impl_->path; }
const std::vector<std::string>& SafetensorsFile::tensor_names() const { return impl_->names; }
bool SafetensorsFile::contains(const std::string& name) const { return impl_->tensors.count(name) != 0; }

const TensorView& SafetensorsFile::tensor(const std::string& name) const {
  auto it = impl_->tensors.find(name);
  if (it == impl_->tensors.end()) fail("{}: no tensor '{}' in this file", impl_->path, name);
  return it->second;
}

const std::map<std::string, std::string>& SafetensorsFile::metadata() const { return impl_->metadata; }
size_t SafetensorsFile::file_size() const { return impl_->size; }
const std::byte* SafetensorsFile::mapped_data() const { return impl_->data; }

}  // namespace fp4serve
