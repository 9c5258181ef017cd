// What `bench decode` and `bench prefill` run: a checkpoint directory (--model DIR, any
// layout the loader reads) or the built-in synthetic V4-Flash-proportioned model
// (make-test-model's `flash` preset filled with random codes), on the chosen backend
// behind a MeteredBackend that counts the weight bytes and FLOPs of each step.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "checkpoint/checkpoint.h"
#include "checkpoint/test_model.h"
#include "cli/engine_flags.h"
#include "cli/metered_backend.h"
#include "model/model.h"

namespace fp4serve::cli {

struct BenchModelFlags {
  std::string model_dir;  // empty: the synthetic model
  FlashShape shape;
  int threads = 0;  // 0: FP4SERVE_THREADS, else every hardware thread
  EngineFlags engine;

  void add_to(CLI::App& sub);
  // Sizes the CPU thread pool (before anything starts it): --threads over FP4SERVE_THREADS.
  void apply_threads() const;
};

struct BenchModel {
  // Destroyed in reverse: the model, the backends, then the checkpoint's mapped files.
  Checkpoint checkpoint;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<MeteredBackend> metered;
  std::unique_ptr<Model> model;
  std::string what;  // one line naming the model and its size
};

// Opens the model with state for `sequences` sequences of `context` positions and steps of
// up to `step_tokens` rows (the fit check). Prints the device and the model's line.
std::unique_ptr<BenchModel> open_bench_model(const BenchModelFlags& flags, int64_t context, int64_t sequences,
                                             int64_t step_tokens);

// Token ids for sequence `s`, spread over the vocabulary and different per sequence.
std::vector<int32_t> bench_prompt(int64_t length, int64_t s, int64_t vocab);

// --tensor-parallel-size > 1 or --enable-expert-parallel: bench decode runs the model split
// over in-process ranks (bench_decode_sharded.cpp) instead of one metered backend.
bool runs_on_ranks(const BenchModelFlags& flags);
int bench_decode_sharded(const BenchModelFlags& flags, int64_t prompt_tokens, int64_t tokens, double bandwidth_gb);

}  // namespace fp4serve::cli
