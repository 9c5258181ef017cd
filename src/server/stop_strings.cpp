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

  // The first stop string to complete wins (the earliest end; at the same end
  // the longest). Unlike "earliest start", this does not depend on how the
  // text was cut into pieces.
  size_t best = std::string::npos, best_end = std::string::npos;
  const std::string* best_stop = nullptr;
  for (const auto& stop : stops_) {
    size_t at = held_.find(stop);
    if (at == std::string::npos) continue;
    size_t end = at + stop.size();
    if (end < best_end || (end == best_end && stop.size() > best_stop->size())) {
      best = at;
      best_end = end;
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
