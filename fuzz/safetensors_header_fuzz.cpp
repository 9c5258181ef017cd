// libFuzzer target: arbitrary bytes as a whole safetensors file, and as a shard
// index. Either parser must accept the input or throw fp4serve::Error; any other
// exception, crash, leak or sanitizer report is a finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/error.h"
#include "io/safetensors.h"
#include "io/safetensors_index.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* bytes = reinterpret_cast<const std::byte*>(data);
  try {
    auto file = fp4serve::SafetensorsFile::from_bytes(nullptr, bytes, size, "fuzz.safetensors");
    // Every accepted view must lie inside the input: touch its first and last byte.
    unsigned sink = 0;
    for (const auto& name : file->tensor_names()) {
      const auto& t = file->tensor(name);
      if (t.nbytes > 0) sink += static_cast<unsigned>(t.data[0]) + static_cast<unsigned>(t.data[t.nbytes - 1]);
      if (t.numel() * static_cast<int64_t>(fp4serve::dtype_size(t.dtype)) != static_cast<int64_t>(t.nbytes)) {
        __builtin_trap();
      }
    }
    asm volatile("" : : "r"(sink));
  } catch (const fp4serve::Error&) {
  }
  try {
    fp4serve::parse_safetensors_index(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.index.json");
  } catch (const fp4serve::Error&) {
  }
  return 0;
}
