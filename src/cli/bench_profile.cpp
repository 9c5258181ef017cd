#include "cli/bench_profile.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace fp4serve::cli {

void print_profile(const MeteredBackend& metered, int64_t steps, double step_seconds, double bandwidth) {
  std::vector<std::pair<std::string, MeteredBackend::ProfileRow>> rows(metered.profile().begin(), metered.profile().end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  const double n = static_cast<double>(steps);
  double total_s = 0, total_bytes = 0, linear_s = 0, linear_bytes = 0;
  std::printf("\nprofile (per step, mean of %lld profiled steps; each op synchronized%s):\n", static_cast<long long>(steps),
              bandwidth > 0 ? "; floor = weight bytes / read bandwidth" : "");
  std::printf("| %-60s | %6s | %9s | %9s | %6s | %9s | %9s | %8s |\n", "op / projection", "calls", "MB", "ms", "step", "GB/s",
              "floor ms", "of floor");
  std::printf("|%s|%s|%s|%s|%s|%s|%s|%s|\n", std::string(62, '-').c_str(), std::string(8, '-').c_str(),
              std::string(11, '-').c_str(), std::string(11, '-').c_str(), std::string(8, '-').c_str(),
              std::string(11, '-').c_str(), std::string(11, '-').c_str(), std::string(10, '-').c_str());
  for (const auto& [name, r] : rows) {
    const double s = r.seconds / n, bytes = static_cast<double>(r.bytes) / n;
    total_s += s;
    total_bytes += bytes;
    if (bytes > 0) {
      linear_s += s;
      linear_bytes += bytes;
    }
    const double floor_s = bytes / bandwidth;
    if (bytes > 0 && bandwidth > 0)
      std::printf("| %-60s | %6.1f | %9.2f | %9.3f | %5.1f%% | %9.2f | %9.3f | %7.0f%% |\n", name.c_str(),
                  static_cast<double>(r.calls) / n, bytes / 1e6, s * 1e3, 100.0 * s / step_seconds, bytes / s / 1e9,
                  floor_s * 1e3, 100.0 * floor_s / s);
    else
      std::printf("| %-60s | %6.1f | %9s | %9.3f | %5.1f%% | %9s | %9s | %8s |\n", name.c_str(), static_cast<double>(r.calls) / n,
                  "-", s * 1e3, 100.0 * s / step_seconds, "-", "-", "-");
  }
  if (bandwidth <= 0) {
    std::printf("| %-60s | %6s | %9.2f | %9.3f | %5.1f%% | %9s | %9s | %8s |\n", "all ops", "", total_bytes / 1e6, total_s * 1e3,
                100.0 * total_s / step_seconds, "-", "-", "-");
    return;
  }
  std::printf("| %-60s | %6s | %9.2f | %9.3f | %5.1f%% | %9.2f | %9.3f | %7.0f%% |\n", "projections (rows with weights)", "",
              linear_bytes / 1e6, linear_s * 1e3, 100.0 * linear_s / step_seconds, linear_bytes / linear_s / 1e9,
              linear_bytes / bandwidth * 1e3, 100.0 * linear_bytes / bandwidth / linear_s);
  std::printf("| %-60s | %6s | %9.2f | %9.3f | %5.1f%% | %9s | %9.3f | %7.0f%% |\n", "all ops", "", total_bytes / 1e6, total_s * 1e3,
              100.0 * total_s / step_seconds, "", total_bytes / bandwidth * 1e3, 100.0 * total_bytes / bandwidth / total_s);
}

}  // namespace fp4serve::cli
