#include "text/tokenizer_config.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/error.h"

namespace fp4serve::text {

bool tokenizer_adds_bos(const std::string& tokenizer_path) {
  const auto config_path = std::filesystem::path(tokenizer_path).parent_path() / "tokenizer_config.json";
  if (!std::filesystem::exists(config_path)) return false;
  std::ifstream in(config_path);
  auto config = nlohmann::json::parse(in, nullptr, false);
  FP4SERVE_CHECK(!config.is_discarded() && config.is_object(), "{}: not a JSON object", config_path.string());
  auto flag = config.find("add_bos_token");
  if (flag == config.end() || flag->is_null()) return false;
  FP4SERVE_CHECK(flag->is_boolean(), "{}: add_bos_token must be a boolean", config_path.string());
  return flag->get<bool>();
}

}  // namespace fp4serve::text
