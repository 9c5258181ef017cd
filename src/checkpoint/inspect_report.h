// What `fp4serve inspect` says about a loaded checkpoint: layout, layer schedule,
// modules with encoding / shape / bytes, totals per encoding, memory estimate,
// warnings; as text for people and JSON for tools. Also the --tensor lookups.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"

namespace fp4serve {

nlohmann::json inspect_json(const Checkpoint& checkpoint, const std::string& path);
// Routed experts of one layer that share encoding and shape are folded into one row.
std::string inspect_text(const Checkpoint& checkpoint, const std::string& path);

// Resolves NAME, which may be a canonical linear ("layers.0.attn.wq_a") or tensor
// name, or the checkpoint's own name of either (with or without ".weight").
struct ResolvedName {
  bool is_linear = false;
  std::string canonical;
};
ResolvedName resolve_tensor_name(const Checkpoint& checkpoint, const std::string& name);

// The float32 values of NAME: a linear's dequantized weight [out, in], or any other
// tensor converted to float32 in its own shape. Written as tensor "weight".
TensorView dequantized_tensor(const Checkpoint& checkpoint, const ResolvedName& name);

}  // namespace fp4serve
