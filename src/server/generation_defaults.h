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
  // The chat thinking mode of a request that chooses none (read_default_thinking).
  bool thinking = true;
};

// Reads MODEL_DIR/generation_config.json. No file: OpenAI's defaults. Fields it
// does not set keep OpenAI's defaults; `do_sample` is ignored, as in vLLM.
// Throws Error naming the file and the field on a malformed file or a value out
// of the range a request could give.
SamplingDefaults read_generation_config(const std::string& model_dir);

// The thinking mode of chat requests that choose none, as the model directory
// ships it: `default_chat_template_kwargs` (the name of vLLM's
// --default-chat-template-kwargs, which models ship in their configs) with a
// boolean `thinking` (DeepSeek's template variable) or `enable_thinking` (the
// common spelling), in MODEL_DIR/generation_config.json, else in
// tokenizer_config.json; true when neither sets it, as DeepSeek-V4 thinks by
// default. Throws Error naming the file and the field on a malformed value.
bool read_default_thinking(const std::string& model_dir);

// "temperature 0.8, top_p 0.95": the fields that differ from OpenAI's defaults.
std::string describe_sampling_defaults(const SamplingDefaults& defaults);

}  // namespace fp4serve::server
