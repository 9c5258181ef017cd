#include "runtime/speculative_config.h"

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace fp4serve::runtime {

SpeculativeConfig parse_speculative_config(std::string_view text) {
  SpeculativeConfig spec;
  if (text.empty()) return spec;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("--speculative-config is not valid JSON ({}): {}", e.what(), text);
  }
  FP4SERVE_CHECK(j.is_object(), "--speculative-config must be a JSON object, got: {}", text);
  for (const auto& [key, value] : j.items()) {
    if (key == "method") {
      FP4SERVE_CHECK(value.is_string(), "--speculative-config: \"method\" must be a string");
      const std::string m = value.get<std::string>();
      if (m == "dspark") spec.method = SpeculativeMethod::kDSpark;
      else if (m == "mtp") spec.method = SpeculativeMethod::kMtp;
      else fail("--speculative-config: unknown method \"{}\" (known: \"dspark\", \"mtp\")", m);
    } else if (key == "num_speculative_tokens") {
      FP4SERVE_CHECK(value.is_number_integer() && value.get<int64_t>() >= 1,
                     "--speculative-config: \"num_speculative_tokens\" must be an integer >= 1, got {}", value.dump());
      spec.num_speculative_tokens = value.get<int64_t>();
    } else if (key == "confidence_threshold") {
      FP4SERVE_CHECK(value.is_number() && value.get<double>() >= 0.0 && value.get<double>() < 1.0,
                     "--speculative-config: \"confidence_threshold\" must be a number in [0, 1), got {}", value.dump());
      spec.confidence_threshold = value.get<double>();
    } else {
      fail("--speculative-config: unknown key \"{}\" (known: method, num_speculative_tokens, confidence_threshold)", key);
    }
  }
  FP4SERVE_CHECK(spec.method != SpeculativeMethod::kNone, "--speculative-config: \"method\" is missing (\"dspark\" or \"mtp\")");
  FP4SERVE_CHECK(spec.num_speculative_tokens >= 1, "--speculative-config: \"num_speculative_tokens\" is missing");
  return spec;
}

void check_speculative_config(const SpeculativeConfig& spec, const ModelConfig& c, const std::string& model_dir) {
  if (!spec.enabled()) return;
  if (spec.method == SpeculativeMethod::kDSpark) {
    FP4SERVE_CHECK(c.draft.kind == DraftKind::kDSpark,
                   "--speculative-config asks for method \"dspark\", but {} has {} (a DSpark draft is found by dspark_* keys "
                   "in config.json or mtp.0.main_proj in the index)",
                   model_dir, c.draft.kind == DraftKind::kMtp ? "a classic MTP head (use method \"mtp\")" : "no draft");
    FP4SERVE_CHECK(spec.num_speculative_tokens <= c.draft.block_size,
                   "--speculative-config: num_speculative_tokens {} is more than the DSpark draft proposes per step "
                   "(dspark_block_size {})",
                   spec.num_speculative_tokens, c.draft.block_size);
    FP4SERVE_CHECK(spec.confidence_threshold == 0.0 || c.draft.has_confidence_head,
                   "--speculative-config: confidence_threshold needs a confidence head, and {}'s draft has none", model_dir);
  } else {
    FP4SERVE_CHECK(c.num_mtp_layers >= 1,
                   "--speculative-config asks for method \"mtp\", but {} has {}", model_dir,
                   c.draft.kind == DraftKind::kDSpark ? "a DSpark draft (use method \"dspark\")" : "no MTP head");
    FP4SERVE_CHECK(spec.num_speculative_tokens == 1,
                   "--speculative-config: the classic MTP head drafts 1 token per step; num_speculative_tokens is {}",
                   spec.num_speculative_tokens);
    FP4SERVE_CHECK(spec.confidence_threshold == 0.0, "--speculative-config: confidence_threshold applies to \"dspark\" only");
  }
}

void check_speculation_alone(const SpeculativeConfig& spec, int tensor_parallel_size, bool expert_parallel) {
  if (!spec.enabled() || (tensor_parallel_size <= 1 && !expert_parallel)) return;
  fail("--speculative-config with --tensor-parallel-size {}{}: speculative decoding runs on an unsplit model only "
       "(its MTP block and DSpark draft are not run across ranks yet, issue 14); drop one of the two",
       tensor_parallel_size, expert_parallel ? " --enable-expert-parallel" : "");
}

}  // namespace fp4serve::runtime
