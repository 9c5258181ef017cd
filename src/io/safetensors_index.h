// model.safetensors.index.json, the map of a sharded checkpoint:
//   {"metadata": {"total_size": 123, ...}, "weight_map": {"tensor.name": "model-00001-of-00002.safetensors", ...}}
// Parsed from bytes (so the fuzzer can reach it) and checked for shape only; that
// the shards exist and hold what the map says is TensorSource's job.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace fp4serve {

inline constexpr const char* kSafetensorsIndexName = "model.safetensors.index.json";

struct SafetensorsIndex {
  std::map<std::string, std::string> weight_map;  // tensor name -> shard file name, relative to the index
  // "metadata" entries; a value that is not a JSON string is kept as its JSON text
  // (transformers writes "total_size" as a number).
  std::map<std::string, std::string> metadata;
};

// Throws Error naming `label` (the index file) and the tensor at fault. Shard names
// must be relative paths that stay inside the checkpoint directory.
SafetensorsIndex parse_safetensors_index(std::string_view text, const std::string& label);

}  // namespace fp4serve
