// The sampling defaults a model ships in generation_config.json. As vLLM does
// with `--generation-config auto`, they replace OpenAI's defaults for the fields
// a request leaves out; a request that sets a field always wins.
#pragma once

#include <string>

namespace fp4serve::server {

struct SamplingDefaults {
  double temperature = 1.0;  // OpenAI's defaults
  double top_p = 1.0;
  int top_k = 0;  // 0: off
  double min_p = 0.0;
  double repetition_penalty = 1.0;
};

// Reads MODEL_DIR/generation_config.json. No file: OpenAI's defaults. Fields it
// does not set keep OpenAI's defaults; `do_sample` is ignored, as in vLLM.
// Throws Error naming the file and the field on a malformed file or a value out
// of the range a request could give.
SamplingDefaults read_generation_config(const std::string& model_dir);

// "temperature 0.8, top_p 0.95": the fields that differ from OpenAI's defaults.
std::string describe_sampling_defaults(const SamplingDefaults& defaults);

}  // namespace fp4serve::server
