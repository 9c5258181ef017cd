#include "base/version.h"

#include <fmt/format.h>

#include "fp4serve_version.h"
#include "backend/cuda_probe.h"

namespace fp4serve {

std::string version_string() {
  std::string cuda = FP4SERVE_CUDA_TARGET;
  if (cuda == "none") {
    cuda = "none (CPU-only build)";
  } else {
    cuda += fmt::format(" (devices visible: {})", cuda_device_count());
  }
  return fmt::format("fp4serve {} (commit {})\ncuda: {}", FP4SERVE_VERSION, FP4SERVE_GIT_COMMIT, cuda);
}

}  // namespace fp4serve
