#include "server/stop_strings.h"

#include <algorithm>
#include <utility>

namespace fp4serve::server {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops, bool include_stop_in_output)
    : stops_(std::move(stops)), include_stop_(include_stop_in_output) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

std::string StopStringMatcher::push(std::string_view text) {
  if (matched()) return {};
  held_ += text;
  if (stops_.empty()) return std::exchange(held_, {});

  // The earliest occurrence wins; at equal positions, the longest stop string.
  size_t best = std::string::npos;
  const std::string* best_stop = nullptr;
  for (const auto& stop : stops_) {
    size_t at = held_.find(stop);
    if (at != std::string::npos && (at < best || (at == best && stop.size() > best_stop->size()))) {
      best = at;
      best_stop = &stop;
    }
  }
  if (best_stop) {
    matched_stop_ = *best_stop;
    std::string out = held_.substr(0, include_stop_ ? best + best_stop->size() : best);
    held_.clear();
    return out;
  }
  // Hold back the longest tail that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const auto& stop : stops_) {
    for (size_t n = std::min(held_.size(), stop.size() - 1); n > keep; --n) {
      if (std::string_view(held_).substr(held_.size() - n) == std::string_view(stop).substr(0, n)) {
        keep = n;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopStringMatcher::finish() {
  if (matched()) return {};
  return std::exchange(held_, {});
}

}  // namespace fp4serve::server
