#include "checkpoint/progress_bar.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace fp4serve {
namespace {

std::string bytes_text(uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1e9) return fmt::format("{:.2f} GB", b / 1e9);
  if (b >= 1e6) return fmt::format("{:.1f} MB", b / 1e6);
  return fmt::format("{:.0f} kB", b / 1e3);
}

}  // namespace

ProgressBar::ProgressBar(std::string label, uint64_t total_bytes, bool enabled)
    : label_(std::move(label)),
      total_(total_bytes),
      enabled_(enabled && isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::~ProgressBar() {
  if (enabled_ && !finished_) std::fputs("\n", stderr);
}

std::string ProgressBar::render(const std::string& label, uint64_t done, uint64_t total, double seconds) {
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
  std::string eta = "--";
  if (rate > 0 && done < total) eta = fmt::format("{:.0f} s", static_cast<double>(total - done) / rate);
  if (done >= total) eta = fmt::format("done in {:.1f} s", seconds);
  const int percent = total > 0 ? static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total)) : 100;
  constexpr int kWidth = 24;
  const int filled = percent * kWidth / 100;
  return fmt::format("{} [{}{}] {:3d}%  {} / {}  {:.0f} MB/s  ETA {}", label, std::string(filled, '#'),
                     std::string(kWidth - filled, ' '), percent, bytes_text(done), bytes_text(total), rate / 1e6, eta);
}

void ProgressBar::update(uint64_t done_bytes) {
  done_ = done_bytes;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (done_bytes < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  std::fprintf(stderr, "\r%s\x1b[K", render(label_, done_bytes, total_, seconds).c_str());
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (finished_) return;
  update(total_);
  if (enabled_) std::fputs("\n", stderr);
  finished_ = true;
}

}  // namespace fp4serve
