// Reads typed config.json fields that may appear under several names (DeepSeek's HF
// config, DeepSeek's inference/config.json and transformers' DeepseekV4Config name the
// same quantity differently). Two names present with different values is an error
// naming both; every error names the file and the field.
#pragma once

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

#include "base/error.h"

namespace fp4serve {

inline std::string short_dump(const nlohmann::json& value) {
  std::string text = value.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

class FieldReader {
 public:
  FieldReader(const nlohmann::json& object, std::string label) : object_(object), label_(std::move(label)) {}

  const std::string& label() const { return label_; }

  // The first present name and its value, after checking that all present names agree.
  std::optional<std::pair<std::string, const nlohmann::json*>> find(std::initializer_list<const char*> names) const {
    std::optional<std::pair<std::string, const nlohmann::json*>> found;
    for (const char* name : names) {
      auto it = object_.find(name);
      if (it == object_.end() || it->is_null()) continue;
      if (!found) {
        found.emplace(name, &*it);
      } else if (!same_value(*found->second, *it)) {
        fail("{}: fields '{}' ({}) and '{}' ({}) disagree", label_, found->first, short_dump(*found->second), name,
             short_dump(*it));
      }
    }
    return found;
  }

  std::optional<int64_t> optional_integer(std::initializer_list<const char*> names) const {
    auto found = find(names);
    if (!found) return std::nullopt;
    return as_integer(found->first, *found->second);
  }

  int64_t integer(std::initializer_list<const char*> names) const {
    auto value = optional_integer(names);
    if (!value) fail("{}: missing field '{}'", label_, *names.begin());
    return *value;
  }

  int64_t integer_or(std::initializer_list<const char*> names, int64_t fallback) const {
    return optional_integer(names).value_or(fallback);
  }

  std::optional<double> optional_number(std::initializer_list<const char*> names) const {
    auto found = find(names);
    if (!found) return std::nullopt;
    return as_number(found->first, *found->second);
  }

  double number_or(std::initializer_list<const char*> names, double fallback) const {
    return optional_number(names).value_or(fallback);
  }

  std::optional<std::string> optional_string(std::initializer_list<const char*> names) const {
    auto found = find(names);
    if (!found) return std::nullopt;
    if (!found->second->is_string())
      fail("{}: field '{}' must be a string, got {}", label_, found->first, short_dump(*found->second));
    return found->second->get<std::string>();
  }

  std::optional<bool> optional_bool(std::initializer_list<const char*> names) const {
    auto found = find(names);
    if (!found) return std::nullopt;
    if (!found->second->is_boolean())
      fail("{}: field '{}' must be true or false, got {}", label_, found->first, short_dump(*found->second));
    return found->second->get<bool>();
  }

  int64_t as_integer(const std::string& name, const nlohmann::json& value) const {
    if (value.is_number_integer()) {
      if (value.is_number_unsigned() && value.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
        fail("{}: field '{}' is out of range: {}", label_, name, short_dump(value));
      return value.get<int64_t>();
    }
    if (value.is_number_float()) {
      const double d = value.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return static_cast<int64_t>(d);
    }
    fail("{}: field '{}' must be an integer, got {}", label_, name, short_dump(value));
  }

  double as_number(const std::string& name, const nlohmann::json& value) const {
    if (!value.is_number()) fail("{}: field '{}' must be a number, got {}", label_, name, short_dump(value));
    return value.get<double>();
  }

 private:
  static bool same_value(const nlohmann::json& a, const nlohmann::json& b) {
    if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
    return a == b;
  }

  const nlohmann::json& object_;
  std::string label_;
};

}  // namespace fp4serve
