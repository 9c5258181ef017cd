#include "server/sse_pump.h"

namespace fp4serve::server {
namespace {

using namespace std::chrono_literals;

constexpr auto kIdleSleep = 2ms;         // between checks of the progress count: bounds the added latency
constexpr auto kFullPassEvery = 50ms;    // polls every stream even without new tokens
constexpr auto kKeepAliveEvery = 5s;     // SSE comment on a silent stream (long prefills)
constexpr auto kPeerCheckEvery = 100ms;  // how soon a vanished client's generation stops

}  // namespace

SsePump::SsePump(size_t max_unsent_bytes, std::function<uint64_t()> progress)
    : max_unsent_bytes_(max_unsent_bytes), progress_(std::move(progress)), thread_([this] { run(); }) {}

SsePump::~SsePump() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void SsePump::add(std::shared_ptr<HttpConnection> connection, std::unique_ptr<EventSource> events) {
  connection->start_stream("text/event-stream");
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mutex_);
    incoming_.push_back({std::move(connection), std::move(events), now, now});
  }
  wake_.notify_one();
}

bool SsePump::pump(Stream& s, std::chrono::steady_clock::time_point now, bool& progressed) {
  if (s.connection->closed()) {
    s.events->cancel();
    return false;
  }
  if (s.connection->unsent_bytes() > max_unsent_bytes_) return true;  // the write deadline guards a stalled reader
  std::string out;
  const bool more = s.events->next(out, 0ms);
  if (out.empty() && more && now - s.last_write >= kKeepAliveEvery) out = ": keep-alive\n\n";
  if (!out.empty()) {
    s.last_write = now;
    progressed = true;
    s.connection->stream_write(std::move(out));
  }
  if (!more) {
    s.connection->stream_end();
    return false;
  }
  if (now - s.last_peer_check >= kPeerCheckEvery) {
    s.last_peer_check = now;
    if (s.connection->peer_gone()) {
      s.events->cancel();
      s.connection->abort();
      return false;
    }
  }
  return true;
}

void SsePump::run() {
  std::vector<Stream> streams;
  uint64_t seen_progress = progress_();
  auto last_full_pass = std::chrono::steady_clock::now();
  bool progressed = false;
  for (;;) {
    bool added = false;
    {
      std::unique_lock lock(mutex_);
      if (streams.empty()) wake_.wait(lock, [&] { return stopping_ || !incoming_.empty(); });
      if (stopping_) break;
      for (auto& s : incoming_) streams.push_back(std::move(s));
      added = !incoming_.empty();
      incoming_.clear();
    }
    const auto now = std::chrono::steady_clock::now();
    const uint64_t progress = progress_();
    // A pass that moved events may have left more (a stream over its unsent bound, the
    // scheduler mid-step): go again; otherwise only on news.
    if (progressed || added || progress != seen_progress || now - last_full_pass >= kFullPassEvery) {
      seen_progress = progress;
      last_full_pass = now;
      progressed = added;
      for (size_t i = 0; i < streams.size();) {
        if (pump(streams[i], now, progressed)) {
          ++i;
        } else {
          streams[i] = std::move(streams.back());
          streams.pop_back();
        }
      }
    }
    if (!progressed) {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, kIdleSleep, [&] { return stopping_ || !incoming_.empty(); });
    }
  }
  for (auto& s : streams) s.events->cancel();
  std::lock_guard lock(mutex_);
  for (auto& s : incoming_) s.events->cancel();
}

}  // namespace fp4serve::server
