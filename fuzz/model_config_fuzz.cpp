// libFuzzer target: config.json parsing (all three styles) and the quantization
// configs read from the same bytes. Any exception but fp4serve::Error, and any
// sanitizer report, is a finding.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "base/error.h"
#include "checkpoint/model_config_json.h"
#include "checkpoint/quant_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    fp4serve::parse_model_config_text(text, "fuzz/config.json");
  } catch (const fp4serve::Error&) {
  }
  const nlohmann::json json = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return 0;
  try {
    fp4serve::parse_quant_config(json, nullptr, "fuzz/config.json", "fuzz/hf_quant_config.json");
  } catch (const fp4serve::Error&) {
  }
  try {
    fp4serve::parse_quant_config(nlohmann::json::object(), &json, "fuzz/config.json", "fuzz/hf_quant_config.json");
  } catch (const fp4serve::Error&) {
  }
  return 0;
}
