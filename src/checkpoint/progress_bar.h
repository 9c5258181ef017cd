// A one-line progress bar for long byte-oriented work (loading, quantizing):
// bytes done / total, MB/s and ETA, redrawn in place on stderr. Silent unless
// stderr is a terminal (logs and pipes stay clean).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace fp4serve {

class ProgressBar {
 public:
  ProgressBar(std::string label, uint64_t total_bytes, bool enabled);
  ~ProgressBar();

  // Redraws at most every 100 ms (and always at the end).
  void update(uint64_t done_bytes);
  // Draws the final state and ends the line.
  void finish();

  // "1.23 GB / 4.56 GB  812 MB/s  ETA 4 s": what update() draws (exposed for tests).
  static std::string render(const std::string& label, uint64_t done, uint64_t total, double seconds);

 private:
  std::string label_;
  uint64_t total_;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  uint64_t done_ = 0;
};

}  // namespace fp4serve
