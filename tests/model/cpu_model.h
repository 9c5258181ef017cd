// A Model on its own CPU backend, built from a Checkpoint as the engine builds it
// (the tests join checkpoint/ and model/ the way runtime/ does).
#pragma once

#include <memory>

#include "backend/backend.h"
#include "checkpoint/checkpoint.h"
#include "model/model.h"

namespace fp4serve::testing {

struct CpuModel {
  explicit CpuModel(const Checkpoint& checkpoint, const ModelOptions& options = {})
      : backend(make_backend(DeviceKind::kCpu)),
        model(*backend, checkpoint.config, checkpoint.linears, checkpoint.tensors, options) {}
  std::unique_ptr<Backend> backend;
  Model model;
};

}  // namespace fp4serve::testing
