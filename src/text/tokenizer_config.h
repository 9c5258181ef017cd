// tokenizer_config.json beside a tokenizer.json: what transformers and vLLM read
// from it for plain (non-chat) prompts.
#pragma once

#include <string>

namespace fp4serve::text {

// Whether plain prompts start with BOS: the `add_bos_token` of the
// tokenizer_config.json in the tokenizer's folder; false when the file or the
// field is absent (DeepSeek-V4 ships false). Throws Error naming the file when
// it is not a JSON object or the field is not a boolean.
bool tokenizer_adds_bos(const std::string& tokenizer_path);

}  // namespace fp4serve::text
