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
// keep it alive.
class SafetensorsFile {
 public:
  // Maps and validates: header JSON, size limits, dtype x shape = byte length,
  // ranges inside the file, no overlaps. Throws Error naming path (and tensor).
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  // Validates a header given as bytes (the fuzzer's entry point).
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

// A checkpoint's tensors across shards: a directory with model.safetensors.index.json,
// or with *.safetensors files, or a single file.
class TensorSource {
 public:
  static TensorSource open(const std::string& path);

  const std::vector<std::string>& tensor_names() const;  // sorted
  bool contains(const std::string& name) const;
  const TensorView& tensor(const std::string& name) const;
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const;
  size_t total_bytes() const;

 private:
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> by_name_;
  std::vector<std::string> names_;
};

struct NamedTensor {
  std::string name;
  TensorView tensor;
};

// Writes one file: header padded so that the data section starts 8-byte aligned,
// every tensor's offset aligned too. Throws Error on I/O failure.
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace fp4serve
