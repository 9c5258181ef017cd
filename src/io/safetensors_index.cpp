#include "io/safetensors_index.h"

#include "base/error.h"
#include "io/strict_json.h"

namespace fp4serve {
namespace {

// A shard path from an untrusted index must not escape the checkpoint directory.
bool stays_inside_directory(std::string_view shard) {
  if (shard.empty() || shard.front() == '/') return false;
  size_t start = 0;
  while (start <= shard.size()) {
    size_t slash = shard.find('/', start);
    if (slash == std::string_view::npos) slash = shard.size();
    const std::string_view part = shard.substr(start, slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = slash + 1;
  }
  return true;
}

}  // namespace

SafetensorsIndex parse_safetensors_index(std::string_view text, const std::string& label) {
  const nlohmann::json root = parse_strict_json_object(text, label, "index");
  SafetensorsIndex index;
  for (const auto& [key, value] : root.items()) {
    if (key == "weight_map") {
      if (!value.is_object()) fail("{}: weight_map must be an object, not {}", label, value.type_name());
      for (const auto& [tensor, shard] : value.items()) {
        if (!shard.is_string()) {
          fail("{}: tensor '{}': weight_map value must be a shard file name, not {}", label, tensor, shard.type_name());
        }
        const auto& shard_name = shard.get_ref<const std::string&>();
        if (!stays_inside_directory(shard_name)) {
          fail("{}: tensor '{}': shard '{}' is not a relative path inside the checkpoint directory", label, tensor,
               shard_name);
        }
        index.weight_map.emplace(tensor, shard_name);
      }
    } else if (key == "metadata") {
      if (!value.is_object()) fail("{}: metadata must be an object, not {}", label, value.type_name());
      for (const auto& [name, item] : value.items()) {
        index.metadata.emplace(name, item.is_string()
                                         ? item.get<std::string>()
                                         : item.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      }
    } else {
      fail("{}: unexpected top-level key '{}' (an index holds only \"metadata\" and \"weight_map\")", label, key);
    }
  }
  if (!root.contains("weight_map")) fail("{}: index has no weight_map", label);
  return index;
}

}  // namespace fp4serve
