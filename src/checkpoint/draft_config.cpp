#include "checkpoint/draft_config.h"

#include <algorithm>
#include <string_view>

#include "io/safetensors.h"

namespace fp4serve {
namespace {

// J of a name "mtp.J.rest", or -1.
int64_t draft_block_index(std::string_view name) {
  constexpr std::string_view kPrefix = "mtp.";
  if (name.substr(0, kPrefix.size()) != kPrefix) return -1;
  name.remove_prefix(kPrefix.size());
  int64_t j = 0;
  size_t digits = 0;
  while (digits < name.size() && digits < 6 && name[digits] >= '0' && name[digits] <= '9')
    j = j * 10 + (name[digits++] - '0');
  if (digits == 0 || digits >= name.size() || name[digits] != '.') return -1;
  return j;
}

}  // namespace

DraftEvidence draft_evidence(const TensorSource& source) {
  DraftEvidence e;
  e.known = true;
  e.origin = source.path();
  for (const std::string& name : source.tensor_names()) {
    const int64_t j = draft_block_index(name);
    if (j < 0) continue;
    e.stages = std::max(e.stages, j + 1);
  }
  if (source.contains("mtp.0.main_proj.weight")) {
    e.dspark_tensors = true;
    const auto& shape = source.tensor("mtp.0.main_proj.weight").shape;
    if (shape.size() == 2) e.main_proj_in = shape[1];
  }
  e.mtp_tensors = source.contains("mtp.0.e_proj.weight");
  const std::string markov = "mtp." + std::to_string(e.stages - 1) + ".markov_head.markov_w1.weight";
  if (e.stages > 0 && source.contains(markov)) {
    const auto& shape = source.tensor(markov).shape;
    if (shape.size() == 2) e.markov_rank = shape[1];
  }
  return e;
}

}  // namespace fp4serve
