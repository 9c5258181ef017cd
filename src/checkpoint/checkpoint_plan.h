// The load plan: every stored tensor mapped to a canonical name through one naming
// scheme, grouped into linears and plain tensors, checked against what the config
// implies (unknown, missing and unexpected tensors; shapes; dtypes; encodings;
// scalar scales). Reads no tensor data but the scalar NVFP4 scales.
#pragma once

#include <memory>
#include <string>

#include "checkpoint/checkpoint.h"
#include "checkpoint/naming_scheme.h"
#include "checkpoint/quant_config.h"

namespace fp4serve {

// The naming scheme that maps the most of `names` (ties go to the first in
// kAllNamingSchemes). Throws Error when no scheme knows any of them.
NamingScheme detect_naming_scheme(const std::vector<std::string>& names, const std::string& label);

// Builds the Checkpoint (config, layout, linears, tensors, warnings, source) or
// throws Error naming the culprit. `config` may lose its MTP layers when the
// checkpoint has none (a warning says so).
Checkpoint plan_checkpoint(ModelConfig config, const QuantConfig& quant, std::shared_ptr<const TensorSource> source,
                           const std::string& label);

}  // namespace fp4serve
