// The safetensors layout, parsed and validated from a file's bytes:
//   [8-byte little-endian header length N][N bytes of JSON header][data section]
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets relative to the data section) plus an optional "__metadata__" object of
// strings.
//
// Validation follows the reference implementation (huggingface/safetensors; checked
// against 0.8.0, which refuses gaps, overlaps, bytes after the last tensor, NUL
// padding and non-string metadata, as we do): the tensors must tile the data
// section exactly. We are stricter in two ways the reference lets through: a key
// given twice (it keeps one silently) and unknown fields in a tensor entry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/tensor.h"

namespace fp4serve {

// The reference implementation's limit; real headers are at most a few MB.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::U8;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets within the data section
  uint64_t end = 0;
};

struct SafetensorsHeader {
  uint64_t data_start = 0;                // 8 + header length: file offset of the data section
  std::vector<SafetensorsEntry> tensors;  // in data order (by begin offset, then name)
  std::map<std::string, std::string> metadata;
};

// Parses and validates the whole file given as `size` bytes at `data` (only the
// header is read; tensor bytes are not touched). Throws Error naming `label` and,
// where there is one, the tensor.
SafetensorsHeader parse_safetensors_header(const std::byte* data, size_t size, const std::string& label);

}  // namespace fp4serve
