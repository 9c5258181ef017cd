// safetensors files, read zero-copy through mmap and validated strictly, and
// written with aligned data. Every error names the file and, where there is
// one, the tensor.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/tensor.h"

namespace fp4serve {

// One .safetensors file, mapped read-only. Tensors are views into the mapping and
// keep it alive. A tensor's data is aligned to its element size whenever the file
// laid it out so (current reference writers and ours do); the format does not
// demand it, so a foreign file may give a misaligned view.
class SafetensorsFile {
 public:
  // Maps and validates: header JSON, size limits, dtype x shape = byte length,
  // ranges inside the file, no overlaps or gaps (rules in io/safetensors_header.h).
  // Throws Error naming path (and tensor).
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  // Validates a whole file given as bytes (the fuzzer's entry point); `owner`
  // keeps `data` alive for the tensor views, `label` names it in errors.
  static std::shared_ptr<SafetensorsFile> from_bytes(std::shared_ptr<const void> owner, const std::byte* data,
                                                     size_t size, const std::string& label);

  const std::string& path() const;
  const std::vector<std::string>& tensor_names() const;  // in file order
  bool contains(const std::string& name) const;
  const TensorView& tensor(const std::string& name) const;  // throws naming file and tensor
  const std::map<std::string, std::string>& metadata() const;
  size_t file_size() const;
  const std::byte* mapped_data() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// A checkpoint's tensors across shards: a directory with model.safetensors.index.json
// (or exactly one other *.safetensors.index.json), or with *.safetensors files, or a
// single .safetensors file, or an index file itself.
//
// With an index, every weight_map entry must name a shard that exists and holds
// that tensor, and every tensor of a referenced shard must be listed under that
// shard; shards the index does not name are left alone. Without one, every
// *.safetensors file of the directory is a shard. Either way a tensor found in two
// shards is an error naming both.
class TensorSource {
 public:
  static TensorSource open(const std::string& path);

  const std::string& path() const;                       // as given to open()
  const std::vector<std::string>& tensor_names() const;  // sorted
  bool contains(const std::string& name) const;
  const TensorView& tensor(const std::string& name) const;  // throws naming the checkpoint and tensor
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const;
  size_t total_bytes() const;  // sum of the tensors' byte lengths (headers excluded)
  // The index's "metadata" (empty without an index); non-string values as JSON text.
  const std::map<std::string, std::string>& index_metadata() const;

 private:
  void add_file(std::shared_ptr<SafetensorsFile> file);  // throws on a tensor already present
  void add_indexed_shards(const std::string& index_path);

  std::string path_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> by_name_;
  std::vector<std::string> names_;
  std::map<std::string, std::string> index_metadata_;
};

struct NamedTensor {
  std::string name;
  TensorView tensor;
};

// Writes one file: the header JSON (sorted keys), padded with spaces so that the
// data section starts 8-byte aligned, then the data with no gaps (the reference
// reader refuses gaps). Tensors are laid out by element size, largest first, and
// in the given order within one element size, so every tensor's offset is a
// multiple of its element size and typed access stays aligned. The bytes go to a
// temporary file in the same directory that is renamed over `path` only once
// complete, so a failed write never leaves a partial file under `path`. Throws
// Error naming the path (and tensor) on bad input or I/O failure.
//
// With MissingData::kHole, a tensor whose view has no data (null, with nbytes set) is
// written as a hole (a sparse file reads it as zeros): full-size checkpoints for
// commands that read headers only (plan, inspect) without the disk they would fill.
enum class MissingData : uint8_t { kError, kHole };
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {},
                       MissingData missing_data = MissingData::kError);

}  // namespace fp4serve
