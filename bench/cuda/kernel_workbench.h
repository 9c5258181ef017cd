// The kernel workbench of build/bin/kernel_workbench (kernel_workbench_main.cpp):
// times every encoding's GEMM at DeepSeek-V4 Flash/Pro shapes and M = 1 ... 4096 beside the
// physical references measured in the same run (device-to-device copy bandwidth, cuBLASLt
// BF16 and FP8 at the same shapes), and the MoE layer of V4-Flash at decode batch sizes.
// Weights are random valid codes filled on the device and rotated among enough copies that
// the L2 cache cannot serve them; each figure is the median of CUDA-graph replays.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fp4serve::cuda {

struct WorkbenchOptions {
  std::vector<int64_t> ms = {1, 4, 16, 64, 256, 4096};
  std::vector<std::string> models = {"flash", "pro"};
  std::vector<int64_t> moe_tokens = {1, 8, 64};
  bool cublas = true;
  std::string matrix_filter;  // only matrices whose name contains this (empty: all)
  // Decode variants of dev/ (decode_variants.h) timed beside the product's kernel on the
  // shapes they take, by name; "all" for every one.
  std::vector<std::string> variants;
};

struct GemmRow {
  std::string model, matrix, encoding;
  std::string kernel = "product";  // or the name of a decode variant of dev/
  int64_t n = 0, k = 0, m = 0;
  double weight_bytes = 0;      // weight + scales in its encoding
  double us = 0;                // our kernel, per call
  double cublas_bf16_us = -1;   // same shape, cuBLASLt BF16 (-1: unavailable)
  double cublas_fp8_us = -1;    // same shape, cuBLASLt FP8 per-tensor (-1: unavailable)
};

struct MoeRow {
  std::string model, encoding;
  int64_t tokens = 0;
  double active_experts = 0;  // average over the rotated routings
  double expert_bytes = 0;    // distinct expert bytes read per call (average)
  double layer_us = 0;        // route + gate/up + quantize + down + combine
  double route_us = 0, combine_us = 0;
};

struct WorkbenchReport {
  std::string device;
  int sms = 0;
  double copy_gbps = 0;  // device-to-device copy, bytes read + written: the better of the two below
  double copy_kernel_gbps = 0, copy_memcpy_gbps = 0;
  double cublas_bf16_tflops = 0;  // dense 4096 x 7168 x 7168
  double cublas_fp8_tflops = 0;
  std::string cublas_note;
  std::vector<GemmRow> gemm;
  std::vector<MoeRow> moe;
};

WorkbenchReport run_kernel_workbench(const WorkbenchOptions& options,
                                     const std::function<void(const std::string&)>& progress);

nlohmann::json workbench_json(const WorkbenchReport& report);
std::string workbench_markdown(const WorkbenchReport& report);

}  // namespace fp4serve::cuda
