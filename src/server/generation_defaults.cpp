#include "server/generation_defaults.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "base/error.h"

namespace fp4serve::server {
namespace {

using nlohmann::json;

// The number at `key`, if the file sets it (null counts as unset, as in
// transformers), checked against [lo, hi].
bool read_number(const json& config, const std::string& path, const char* key, double lo, double hi, double* out) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return false;
  FP4SERVE_CHECK(it->is_number(), "{}: '{}' must be a number, got {}", path, key, it->type_name());
  double v = it->get<double>();
  FP4SERVE_CHECK(std::isfinite(v) && v >= lo && v <= hi, "{}: '{}' is {}, outside [{}, {}]", path, key, v, lo, hi);
  *out = v;
  return true;
}

// The JSON object in `path`, or null when there is no such file.
json read_json_object(const std::string& path) {
  if (!std::filesystem::exists(path)) return nullptr;
  std::ifstream in(path, std::ios::binary);
  FP4SERVE_CHECK(in.good(), "{}: cannot be read", path);
  std::stringstream text;
  text << in.rdbuf();
  json config = json::parse(text.str(), nullptr, false);
  FP4SERVE_CHECK(!config.is_discarded(), "{}: not valid JSON", path);
  FP4SERVE_CHECK(config.is_object(), "{}: expected a JSON object", path);
  return config;
}

// default_chat_template_kwargs.thinking / .enable_thinking, if the file sets one.
std::optional<bool> thinking_in(const json& config, const std::string& path) {
  auto kwargs = config.find("default_chat_template_kwargs");
  if (kwargs == config.end() || kwargs->is_null()) return std::nullopt;
  FP4SERVE_CHECK(kwargs->is_object(), "{}: 'default_chat_template_kwargs' must be an object, got {}", path,
                 kwargs->type_name());
  std::optional<bool> thinking;
  for (const char* key : {"thinking", "enable_thinking"}) {
    auto it = kwargs->find(key);
    if (it == kwargs->end() || it->is_null()) continue;
    FP4SERVE_CHECK(it->is_boolean(), "{}: 'default_chat_template_kwargs.{}' must be a boolean, got {}", path, key,
                   it->type_name());
    FP4SERVE_CHECK(!thinking || *thinking == it->get<bool>(),
                   "{}: 'default_chat_template_kwargs' sets thinking and enable_thinking to different values", path);
    thinking = it->get<bool>();
  }
  return thinking;
}

}  // namespace

bool read_default_thinking(const std::string& model_dir) {
  for (const char* name : {"generation_config.json", "tokenizer_config.json"}) {
    const std::string path = (std::filesystem::path(model_dir) / name).string();
    const json config = read_json_object(path);
    if (config.is_null()) continue;
    if (auto thinking = thinking_in(config, path)) return *thinking;
  }
  return true;
}

SamplingDefaults read_generation_config(const std::string& model_dir) {
  SamplingDefaults d;
  const std::string path = (std::filesystem::path(model_dir) / "generation_config.json").string();
  const json config = read_json_object(path);
  if (config.is_null()) return d;
  read_number(config, path, "temperature", 0.0, 2.0, &d.temperature);
  read_number(config, path, "top_p", 0.0, 1.0, &d.top_p);
  FP4SERVE_CHECK(d.top_p > 0.0, "{}: 'top_p' must be in (0, 1], got 0", path);
  double top_k = 0;
  if (read_number(config, path, "top_k", -1.0, 2147483647.0, &top_k)) {
    FP4SERVE_CHECK(top_k == std::floor(top_k), "{}: 'top_k' must be an integer, got {}", path, top_k);
    d.top_k = top_k < 0 ? 0 : static_cast<int>(top_k);
  }
  read_number(config, path, "min_p", 0.0, 1.0, &d.min_p);
  read_number(config, path, "repetition_penalty", 0.0, 1e6, &d.repetition_penalty);
  FP4SERVE_CHECK(d.repetition_penalty > 0.0, "{}: 'repetition_penalty' must be > 0", path);
  return d;
}

std::string describe_sampling_defaults(const SamplingDefaults& d) {
  const SamplingDefaults openai;
  std::string out;
  auto add = [&](const char* name, double value, double standard) {
    if (value == standard) return;
    if (!out.empty()) out += ", ";
    out += fmt::format("{} {}", name, value);
  };
  add("temperature", d.temperature, openai.temperature);
  add("top_p", d.top_p, openai.top_p);
  add("top_k", d.top_k, openai.top_k);
  add("min_p", d.min_p, openai.min_p);
  add("repetition_penalty", d.repetition_penalty, openai.repetition_penalty);
  return out;
}

}  // namespace fp4serve::server
