#include "io/safetensors_header.h"

#include <algorithm>
#include <limits>
#include <string_view>
#include <tuple>

#include "base/error.h"
#include "io/strict_json.h"

namespace fp4serve {
namespace {

using Json = nlohmann::json;

// Context for messages about one tensor: "<file>: tensor '<name>': ...".
struct TensorContext {
  const std::string& label;
  const std::string& name;
};

template <typename... Args>
[[noreturn]] void fail_tensor(const TensorContext& at, fmt::format_string<Args...> format, Args&&... args) {
  fail("{}: tensor '{}': {}", at.label, at.name, fmt::format(format, std::forward<Args>(args)...));
}

uint64_t read_le_u64(const std::byte* p) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(p[i]);
  return value;
}

// A JSON integer >= 0 as uint64. nlohmann stores non-negative integers as
// number_unsigned and negative ones as number_integer; floats ("1.0") are refused.
uint64_t non_negative_integer(const Json& value, const TensorContext& at, std::string_view field) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer()) fail_tensor(at, "{} holds negative value {}", field, value.get<int64_t>());
  fail_tensor(at, "{} must hold non-negative integers, not {}", field, value.type_name());
}

std::vector<int64_t> parse_shape(const Json& value, const TensorContext& at) {
  if (!value.is_array()) fail_tensor(at, "shape must be an array, not {}", value.type_name());
  std::vector<int64_t> shape;
  shape.reserve(value.size());
  for (const Json& dim : value) {
    const uint64_t d = non_negative_integer(dim, at, "shape");
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail_tensor(at, "shape dimension {} does not fit in 64-bit signed integers", d);
    }
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

SafetensorsEntry parse_entry(const std::string& name, const Json& value, uint64_t data_bytes,
                             const std::string& label) {
  const TensorContext at{label, name};
  if (!value.is_object()) fail_tensor(at, "entry must be an object, not {}", value.type_name());
  for (const auto& [field, unused] : value.items()) {
    if (field != "dtype" && field != "shape" && field != "data_offsets")
      fail_tensor(at, "unexpected field '{}'", field);
  }
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(field)) fail_tensor(at, "missing field '{}'", field);
  }

  SafetensorsEntry entry;
  entry.name = name;
  const Json& dtype = value["dtype"];
  if (!dtype.is_string()) fail_tensor(at, "dtype must be a string, not {}", dtype.type_name());
  if (!parse_dtype(dtype.get_ref<const std::string&>(), &entry.dtype)) {
    fail_tensor(at, "unknown dtype '{}'", dtype.get_ref<const std::string&>());
  }
  entry.shape = parse_shape(value["shape"], at);

  const Json& offsets = value["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2) {
    fail_tensor(at, "data_offsets must be an array of two integers [begin, end]");
  }
  entry.begin = non_negative_integer(offsets[0], at, "data_offsets");
  entry.end = non_negative_integer(offsets[1], at, "data_offsets");
  if (entry.end < entry.begin) fail_tensor(at, "data_offsets [{}, {}] end before they begin", entry.begin, entry.end);

  // The element count and byte length may overflow 64 bits for a hostile shape;
  // the reference reader checks too, so such a file was never valid anywhere.
  uint64_t bytes = dtype_size(entry.dtype);
  for (int64_t d : entry.shape) {
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes)) {
      fail_tensor(at, "shape {} of dtype {} overflows 64-bit byte counts", shape_string(entry.shape),
                  dtype_name(entry.dtype));
    }
  }
  if (bytes != entry.end - entry.begin) {
    fail_tensor(at, "dtype {} x shape {} needs {} bytes, but data_offsets [{}, {}] span {}", dtype_name(entry.dtype),
                shape_string(entry.shape), bytes, entry.begin, entry.end, entry.end - entry.begin);
  }
  if (entry.end > data_bytes) {
    fail_tensor(at, "data_offsets [{}, {}] run past the end of the data section ({} bytes; file truncated?)",
                entry.begin, entry.end, data_bytes);
  }
  return entry;
}

std::map<std::string, std::string> parse_metadata(const Json& value, const std::string& label) {
  if (!value.is_object()) fail("{}: __metadata__ must be an object of strings, not {}", label, value.type_name());
  std::map<std::string, std::string> metadata;
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) fail("{}: __metadata__ '{}' must be a string, not {}", label, key, item.type_name());
    metadata.emplace(key, item.get<std::string>());
  }
  return metadata;
}

// The tensors, sorted by offset, must cover [0, data_bytes) exactly once.
void check_tiling(const std::vector<SafetensorsEntry>& tensors, uint64_t data_bytes, const std::string& label) {
  uint64_t covered = 0;
  const SafetensorsEntry* previous = nullptr;
  for (const auto& t : tensors) {
    if (t.begin < covered) {
      fail("{}: tensor '{}' (data_offsets [{}, {}]) overlaps tensor '{}' (data_offsets [{}, {}])", label, t.name,
           t.begin, t.end, previous->name, previous->begin, previous->end);
    }
    if (t.begin > covered) {
      fail(
          "{}: tensor '{}' starts at data offset {}, leaving {} unused bytes before it (safetensors data must be "
          "contiguous)",
          label, t.name, t.begin, t.begin - covered);
    }
    covered = t.end;
    previous = &t;
  }
  if (covered != data_bytes) {
    if (previous == nullptr) fail("{}: data section holds {} bytes but the header lists no tensor", label, data_bytes);
    fail("{}: {} unused bytes after the last tensor '{}' (data_offsets end at {}, data section is {} bytes)", label,
         data_bytes - covered, previous->name, covered, data_bytes);
  }
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const std::byte* data, size_t size, const std::string& label) {
  if (size < 8) fail("{}: file is {} bytes, too short for the 8-byte header length", label, size);
  const uint64_t header_bytes = read_le_u64(data);
  if (header_bytes > kMaxSafetensorsHeaderBytes) {
    fail("{}: header length {} exceeds the limit of {} bytes", label, header_bytes, kMaxSafetensorsHeaderBytes);
  }
  if (header_bytes > size - 8) {
    fail("{}: header length {} runs past the end of the file ({} bytes)", label, header_bytes, size);
  }
  const std::string_view text(reinterpret_cast<const char*>(data + 8), header_bytes);
  const Json root = parse_strict_json_object(text, label, "header");

  SafetensorsHeader header;
  header.data_start = 8 + header_bytes;
  const uint64_t data_bytes = size - header.data_start;
  header.tensors.reserve(root.size());
  for (const auto& [name, value] : root.items()) {
    if (name == "__metadata__") {
      header.metadata = parse_metadata(value, label);
    } else {
      header.tensors.push_back(parse_entry(name, value, data_bytes, label));
    }
  }
  std::sort(header.tensors.begin(), header.tensors.end(), [](const auto& a, const auto& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  check_tiling(header.tensors, data_bytes, label);
  return header;
}

}  // namespace fp4serve
