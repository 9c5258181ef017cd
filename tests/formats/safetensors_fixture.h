// A small, independent reader for the committed .safetensors fixtures of these tests (u64
// header length, JSON header, raw little-endian bytes), so the format tests do not depend on
// src/io.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace fp4serve::testing {

class SafetensorsFixture {
 public:
  explicit SafetensorsFixture(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open fixture " + path);
    bytes_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    uint64_t header_size = 0;
    if (bytes_.size() < 8) throw std::runtime_error("fixture too short: " + path);
    std::memcpy(&header_size, bytes_.data(), 8);
    if (8 + header_size > bytes_.size()) throw std::runtime_error("fixture header overruns: " + path);
    header_ = nlohmann::json::parse(bytes_.begin() + 8, bytes_.begin() + 8 + static_cast<int64_t>(header_size));
    data_start_ = 8 + header_size;
  }

  bool has(const std::string& name) const { return header_.contains(name); }

  std::string metadata(const std::string& key) const { return header_.at("__metadata__").at(key).get<std::string>(); }

  // Elements of tensor `name` as T; the dtype must have sizeof(T) bytes per element.
  template <typename T>
  std::vector<T> read(const std::string& name) const {
    const auto& entry = header_.at(name);
    const auto offsets = entry.at("data_offsets").get<std::vector<uint64_t>>();
    const uint64_t size = offsets.at(1) - offsets.at(0);
    if (size % sizeof(T) != 0 || data_start_ + offsets.at(1) > bytes_.size()) {
      throw std::runtime_error("fixture tensor " + name + " has a bad size for the requested type");
    }
    std::vector<T> out(size / sizeof(T));
    std::memcpy(out.data(), bytes_.data() + data_start_ + offsets.at(0), size);
    return out;
  }

 private:
  std::vector<char> bytes_;
  nlohmann::json header_;
  uint64_t data_start_ = 0;
};

}  // namespace fp4serve::testing
