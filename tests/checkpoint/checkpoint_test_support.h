// Shared helpers of the checkpoint tests: scratch directories, running the CLI, an independent
// table decode of every weight encoding (written from the OCP MX v1.0 spec and
// NVIDIA ModelOpt's NVFP4 layout, not from src/formats), the checksum the PyTorch fixtures use, and rewriting of
// checkpoint files to corrupt them.
#pragma once

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "base/tensor.h"
#include "checkpoint/checkpoint.h"
#include "formats/linear_weight.h"
#include "io/safetensors.h"

namespace fp4serve::testing {

inline std::string fixture_dir(const std::string& name) {
  return std::string(FP4SERVE_SOURCE_DIR) + "/tests/fixtures/checkpoints/" + name;
}

// A fresh directory under the build tree, removed when the object goes.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::path(FP4SERVE_BINARY_DIR) / "test-scratch" /
            (std::string(info ? info->test_suite_name() : "suite") + "." + (info ? info->name() : "test") + "." + name);
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& child) const { return (path_ / child).string(); }

 private:
  std::filesystem::path path_;
};

// Loading without a progress bar.
inline LoadOptions quiet() {
  LoadOptions o;
  o.show_progress = false;
  return o;
}

// ---- The CLI, run as a user would ----------------------------------------------------------

struct CliResult {
  int status;          // exit status, -1 if it did not exit normally
  std::string output;  // stdout and stderr together
};

inline CliResult fp4serve(const std::string& args) {
  const std::string command = std::string(FP4SERVE_BINARY_DIR) + "/bin/fp4serve " + args + " 2>&1";
  std::array<char, 4096> buffer{};
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  while (pipe && fgets(buffer.data(), buffer.size(), pipe)) out += buffer.data();
  const int status = pipe ? pclose(pipe) : -1;
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// sum_i bits(v_i) * (i + 1) mod 2^64 over float32 bit patterns (tools/torch_decode_checksums.py).
inline uint64_t checksum(const float* values, size_t n, uint64_t first_index = 0) {
  uint64_t sum = 0;
  for (size_t i = 0; i < n; ++i) sum += uint64_t{std::bit_cast<uint32_t>(values[i])} * (first_index + i + 1);
  return sum;
}

// ---- Independent decode ---------------------------------------------------------------------

// E2M1: bit 3 sign, bits 2..0 index {0, 0.5, 1, 1.5, 2, 3, 4, 6}.
inline float e2m1(uint8_t code) {
  static const float table[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                  -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
  return table[code & 0xF];
}

// E4M3FN: s eeee mmm, bias 7; e == 0 subnormal m * 2^-9; 0x7F/0xFF NaN.
inline float e4m3(uint8_t b) {
  const int sign = b >> 7, e = (b >> 3) & 0xF, m = b & 7;
  if (e == 15 && m == 7) return std::nanf("");
  const double magnitude = e == 0 ? std::ldexp(double(m), -9) : std::ldexp(1.0 + m / 8.0, e - 7);
  return static_cast<float>(sign ? -magnitude : magnitude);
}

// E8M0: 2^(e - 127); 0xFF NaN.
inline float e8m0(uint8_t e) { return e == 0xFF ? std::nanf("") : static_cast<float>(std::ldexp(1.0, int(e) - 127)); }

inline float bf16(uint16_t bits) { return std::bit_cast<float>(uint32_t{bits} << 16); }

inline float f16(uint16_t h) {
  const int sign = h >> 15, e = (h >> 10) & 0x1F, m = h & 0x3FF;
  double v = e == 0 ? std::ldexp(double(m), -24) : e == 31 ? INFINITY : std::ldexp(1.0 + m / 1024.0, e - 15);
  return static_cast<float>(sign ? -v : v);
}

template <typename T>
T load(const std::byte* p, size_t index) {
  T value;
  std::memcpy(&value, p + index * sizeof(T), sizeof(T));
  return value;
}

// W [N, K] as float32 from the raw stored bytes of a linear.
inline std::vector<float> reference_decode(const LinearWeight& lw) {
  const int64_t n = lw.out_features, k = lw.in_features;
  std::vector<float> out(static_cast<size_t>(n * k));
  const std::byte* w = lw.weight.data;
  const std::byte* s = lw.scale.data;
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < k; ++c) {
      const size_t i = static_cast<size_t>(r * k + c);
      switch (lw.encoding) {
        case WeightEncoding::kBF16: out[i] = bf16(load<uint16_t>(w, i)); break;
        case WeightEncoding::kF16: out[i] = f16(load<uint16_t>(w, i)); break;
        case WeightEncoding::kF32: out[i] = load<float>(w, i); break;
        case WeightEncoding::kFP8Block: {
          const int64_t scale_cols = (k + 127) / 128;
          const size_t si = static_cast<size_t>((r / 128) * scale_cols + c / 128);
          const float scale = lw.scale.dtype == DType::F8_E8M0 ? e8m0(load<uint8_t>(s, si)) : load<float>(s, si);
          out[i] = e4m3(load<uint8_t>(w, i)) * scale;
          break;
        }
        case WeightEncoding::kMXFP4:
        case WeightEncoding::kNVFP4: {
          const uint8_t byte = load<uint8_t>(w, static_cast<size_t>(r * (k / 2) + c / 2));
          const float value = e2m1(c % 2 == 0 ? byte & 0xF : byte >> 4);
          if (lw.encoding == WeightEncoding::kMXFP4) {
            out[i] = value * e8m0(load<uint8_t>(s, static_cast<size_t>(r * (k / 32) + c / 32)));
          } else {
            out[i] = (value * e4m3(load<uint8_t>(s, static_cast<size_t>(r * (k / 16) + c / 16)))) * lw.global_scale;
          }
          break;
        }
      }
    }
  }
  return out;
}

// Float32 widening of a non-linear tensor from its raw bytes.
inline std::vector<float> reference_widen(const TensorView& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    switch (t.dtype) {
      case DType::F32: out[i] = load<float>(t.data, i); break;
      case DType::BF16: out[i] = bf16(load<uint16_t>(t.data, i)); break;
      case DType::F16: out[i] = f16(load<uint16_t>(t.data, i)); break;
      case DType::I64: out[i] = static_cast<float>(load<int64_t>(t.data, i)); break;
      case DType::I32: out[i] = static_cast<float>(load<int32_t>(t.data, i)); break;
      default: ADD_FAILURE() << "unexpected dtype in " << t.origin;
    }
  }
  return out;
}

// ---- Rewriting checkpoint files ------------------------------------------------------------

// Reads every tensor of one .safetensors file into owned copies.
inline std::vector<NamedTensor> read_all(const std::string& path) {
  auto file = SafetensorsFile::open(path);
  std::vector<NamedTensor> out;
  for (const auto& name : file->tensor_names()) {
    const TensorView& t = file->tensor(name);
    TensorView copy = make_owned_tensor(t.dtype, t.shape, name);
    std::memcpy(mutable_data(copy), t.data, t.nbytes);
    out.push_back(NamedTensor{name, std::move(copy)});
  }
  return out;
}

// Loads `path`, lets `edit` change the list of tensors, writes it back.
inline void rewrite(const std::string& path, const std::function<void(std::vector<NamedTensor>&)>& edit) {
  std::vector<NamedTensor> tensors = read_all(path);
  edit(tensors);
  write_safetensors(path, tensors);
}

inline NamedTensor& find_tensor(std::vector<NamedTensor>& tensors, const std::string& name) {
  for (auto& t : tensors)
    if (t.name == name) return t;
  throw std::runtime_error("test: no tensor " + name);
}

}  // namespace fp4serve::testing
