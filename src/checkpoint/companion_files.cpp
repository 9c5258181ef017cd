#include "checkpoint/companion_files.h"

#include <algorithm>
#include <filesystem>

#include "base/error.h"

namespace fp4serve {
namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

bool is_weight_or_config_file(const std::string& name) {
  if (name == "config.json" || name == "hf_quant_config.json") return true;
  for (const char* tail : {".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json", ".pt", ".pth", ".gguf",
                           ".msgpack", ".h5", ".ckpt"})
    if (ends_with(name, tail)) return true;
  return false;
}

CompanionCopy copy_companion_files(const std::string& source_dir, const std::string& output_dir) {
  namespace fs = std::filesystem;
  CompanionCopy out;
  std::error_code list_error;
  const fs::directory_iterator listing(source_dir, list_error);
  if (list_error) fail("{}: cannot list the directory: {}", source_dir, list_error.message());
  for (const fs::directory_entry& entry : listing) {
    std::error_code ec;
    const std::string name = entry.path().filename().string();
    if (entry.is_directory(ec)) {
      out.skipped.push_back(name + "/ (a directory)");
      continue;
    }
    if (is_weight_or_config_file(name)) continue;
    if (!entry.is_regular_file(ec)) {
      out.skipped.push_back(name + " (not a regular file)");
      continue;
    }
    const fs::path target = fs::path(output_dir) / name;
    if (fs::exists(target)) {
      out.skipped.push_back(name + " (the output already has one)");
      continue;
    }
    if (!fs::copy_file(entry.path(), target, fs::copy_options::none, ec) || ec)
      fail("{}: cannot copy to {}: {}", entry.path().string(), target.string(), ec.message());
    out.copied.push_back(name);
  }
  std::sort(out.copied.begin(), out.copied.end());
  std::sort(out.skipped.begin(), out.skipped.end());
  return out;
}

}  // namespace fp4serve
