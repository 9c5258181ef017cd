#include "cli/engine_flags.h"

#include "base/error.h"

namespace fp4serve::cli {

void EngineFlags::add_to(CLI::App& sub) {
  sub.add_option("--device", device,
                 "cpu, cuda, or auto: cuda when this build has the CUDA backend and a GPU is visible, else cpu "
                 "(the choice is printed at start)")
      ->capture_default_str();
  sub.add_option("--act-quant", act_quant,
                 "Activation precision: auto (DeepSeek's FP8 activations and QAT simulations on native FP8/MXFP4 "
                 "checkpoints, else bf16), fp8 (FP8 1x128 activations on every FP8, MXFP4 and NVFP4 linear: W4A8), "
                 "off (bf16 activations, transformers' semantics)")
      ->capture_default_str();
  sub.add_option("--gpu-memory-utilization", gpu_memory_utilization,
                 "Share of the device's memory this process may use (weights, sequence state, workspace); a model "
                 "that does not fit is refused before loading")
      ->capture_default_str();
  sub.add_option("--tensor-parallel-size,--tp", tensor_parallel_size,
                 "Ranks the model is split over in this process, one thread each (with --device cuda: one GPU each, "
                 "GPUs 0..N-1): attention heads, the experts' columns and the vocabulary are divided")
      ->capture_default_str();
  sub.add_flag("--enable-expert-parallel", enable_expert_parallel,
               "Hold whole routed experts by range on each rank instead of splitting every expert's columns");
}

DeviceChoice EngineFlags::device_choice() const {
  DeviceChoice d;
  FP4SERVE_CHECK(parse_device_choice(device, &d), "--device {}: expected cpu, cuda or auto", device);
  return d;
}

ActQuantMode EngineFlags::act_quant_mode() const {
  ActQuantMode m;
  FP4SERVE_CHECK(parse_act_quant(act_quant, &m), "--act-quant {}: expected auto, fp8 or off", act_quant);
  return m;
}

void EngineFlags::apply(EngineOptions& options) const {
  options.device = device_choice();
  options.act_quant = act_quant_mode();
  FP4SERVE_CHECK(gpu_memory_utilization > 0.0 && gpu_memory_utilization <= 1.0,
                 "--gpu-memory-utilization {}: expected a share in (0, 1]", gpu_memory_utilization);
  options.memory_utilization = gpu_memory_utilization;
  FP4SERVE_CHECK(tensor_parallel_size >= 1, "--tensor-parallel-size {}: expected at least 1", tensor_parallel_size);
  options.tensor_parallel_size = tensor_parallel_size;
  options.expert_parallel = enable_expert_parallel;
}

}  // namespace fp4serve::cli
