// The files of a model directory that are not weights or their description:
// tokenizer (tokenizer.json, tokenizer_config.json, special_tokens_map.json,
// vocab/merges, tokenizer.model), generation_config.json, chat templates, licence and
// readme. `quantize` copies them into its output so the result serves as the source
// did; the weights, their index and the quantization/model configs are written anew.
#pragma once

#include <string>
#include <vector>

namespace fp4serve {

struct CompanionCopy {
  std::vector<std::string> copied;   // file names, sorted
  std::vector<std::string> skipped;  // names left behind and why: "inference/ (a directory)"
};

// True for the files quantize writes itself or that describe the source's weights:
// *.safetensors, *.safetensors.index.json, config.json, hf_quant_config.json, and other
// weight formats (*.bin, *.pt, *.pth, *.gguf, *.msgpack, *.h5, *.ckpt).
bool is_weight_or_config_file(const std::string& file_name);

// Copies every other regular file (links followed, as in a Hugging Face cache snapshot)
// at the top level of `source_dir` into `output_dir`, never overwriting. Throws Error
// naming the file on failure.
CompanionCopy copy_companion_files(const std::string& source_dir, const std::string& output_dir);

}  // namespace fp4serve
