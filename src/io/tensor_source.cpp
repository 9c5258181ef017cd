// TensorSource: the tensors of a checkpoint, whichever of the shipped layouts
// (single file, directory of shards, sharded with an index) it comes in.
#include <algorithm>
#include <filesystem>
#include <map>

#include "base/error.h"
#include "base/mapped_file.h"
#include "io/safetensors.h"
#include "io/safetensors_index.h"

namespace fp4serve {
namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Regular files directly in `dir`, sorted; Error (not filesystem_error) when
// the directory cannot be read.
std::vector<std::string> files_in(const fs::path& dir) {
  std::error_code ec;
  std::vector<std::string> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (it->is_regular_file(type_ec)) files.push_back(it->path().string());
  }
  if (ec) fail("{}: cannot list the directory: {}", dir.string(), ec.message());
  std::sort(files.begin(), files.end());
  return files;
}

// The index to use for a directory: model.safetensors.index.json, or the only
// *.safetensors.index.json present; "" when there is none.
std::string find_index(const std::vector<std::string>& files, const fs::path& dir) {
  std::vector<std::string> candidates;
  for (const auto& file : files) {
    if (fs::path(file).filename() == kSafetensorsIndexName) return file;
    if (ends_with(file, ".safetensors.index.json")) candidates.push_back(file);
  }
  if (candidates.size() > 1) {
    fail("{}: several shard indexes ({} and {}) and no {}", dir.string(), candidates[0], candidates[1],
         kSafetensorsIndexName);
  }
  return candidates.empty() ? "" : candidates[0];
}

std::vector<std::string> safetensors_files(const std::vector<std::string>& files, const fs::path& dir) {
  std::vector<std::string> shards;
  for (const auto& file : files) {
    if (fs::path(file).extension() == ".safetensors") shards.push_back(file);
  }
  if (shards.empty()) {
    fail("{}: no *.safetensors files and no {} in this directory", dir.string(), kSafetensorsIndexName);
  }
  return shards;
}

SafetensorsIndex read_index(const std::string& index_path) {
  auto mapped = MappedFile::open(index_path);
  const std::string_view text(reinterpret_cast<const char*>(mapped->data()), mapped->size());
  return parse_safetensors_index(text, index_path);
}

}  // namespace

void TensorSource::add_file(std::shared_ptr<SafetensorsFile> file) {
  for (const auto& name : file->tensor_names()) {
    auto [it, inserted] = by_name_.emplace(name, &file->tensor(name));
    if (!inserted) {
      for (const auto& earlier : files_) {
        if (earlier->contains(name))
          fail("tensor '{}' is in two shards: {} and {}", name, earlier->path(), file->path());
      }
    }
  }
  files_.push_back(std::move(file));
}

TensorSource TensorSource::open(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) fail("{}: no such file or directory", path);

  TensorSource source;
  source.path_ = path;
  std::string index_path;
  if (fs::is_directory(status)) {
    const std::vector<std::string> files = files_in(path);
    index_path = find_index(files, path);
    if (index_path.empty()) {
      for (const auto& file : safetensors_files(files, path)) source.add_file(SafetensorsFile::open(file));
    }
  } else if (ends_with(path, ".index.json")) {
    index_path = path;
  } else {
    source.add_file(SafetensorsFile::open(path));
  }
  if (!index_path.empty()) source.add_indexed_shards(index_path);

  source.names_.reserve(source.by_name_.size());
  for (const auto& [name, view] : source.by_name_) source.names_.push_back(name);
  return source;
}

void TensorSource::add_indexed_shards(const std::string& index_path) {
  const SafetensorsIndex index = read_index(index_path);
  index_metadata_ = index.metadata;
  const fs::path dir = fs::path(index_path).parent_path();
  std::map<std::string, std::vector<std::string>> tensors_by_shard;
  for (const auto& [tensor, shard] : index.weight_map) tensors_by_shard[shard].push_back(tensor);

  // Each shard must hold what the index maps to it; adding the shards then
  // catches a tensor present in two of them.
  for (const auto& [shard, tensors] : tensors_by_shard) {
    const std::string shard_path = (dir / shard).string();
    std::error_code ec;
    if (!fs::exists(shard_path, ec)) {
      fail("{}: tensor '{}' (and {} more) is mapped to shard {}, which does not exist", index_path, tensors.front(),
           tensors.size() - 1, shard_path);
    }
    auto file = SafetensorsFile::open(shard_path);
    for (const auto& tensor : tensors) {
      if (!file->contains(tensor)) {
        fail("{}: tensor '{}' is mapped to shard {}, which does not contain it", index_path, tensor, shard_path);
      }
    }
    add_file(std::move(file));
  }
  // No tensor is in two shards now, so one the index does not list at all is the
  // only way a shard can hold more than its share.
  for (const auto& file : files_) {
    for (const auto& tensor : file->tensor_names()) {
      if (index.weight_map.count(tensor) == 0) {
        fail("{}: tensor '{}' is not listed in the index {}", file->path(), tensor, index_path);
      }
    }
  }
}

const std::string& TensorSource::path() const { return path_; }
const std::vector<std::string>& TensorSource::tensor_names() const { return names_; }
bool TensorSource::contains(const std::string& name) const { return by_name_.count(name) != 0; }

const TensorView& TensorSource::tensor(const std::string& name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) fail("{}: no tensor '{}' in this checkpoint", path_, name);
  return *it->second;
}

const std::vector<std::shared_ptr<SafetensorsFile>>& TensorSource::files() const { return files_; }

size_t TensorSource::total_bytes() const {
  size_t total = 0;
  for (const auto& [name, view] : by_name_) total += view->nbytes;
  return total;
}

const std::map<std::string, std::string>& TensorSource::index_metadata() const { return index_metadata_; }

}  // namespace fp4serve
