#include "server/sse_pump.h"

#include <algorithm>

namespace fp4serve::server {
namespace {

using namespace std::chrono_literals;

constexpr auto kLeadWait = 50ms;         // the longest wait on one stream before all are polled again
constexpr auto kKeepAliveEvery = 5s;     // SSE comment on a silent stream (long prefills)
constexpr auto kPeerCheckEvery = 100ms;  // how soon a vanished client's generation stops

}  // namespace

SsePump::SsePump(size_t max_unsent_bytes) : max_unsent_bytes_(max_unsent_bytes), thread_([this] { run(); }) {}

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

bool SsePump::pump(Stream& s, std::chrono::milliseconds wait, bool& progressed) {
  if (s.connection->closed()) {
    s.events->cancel();
    return false;
  }
  if (s.connection->unsent_bytes() > max_unsent_bytes_) {
    // The write deadline guards a reader that stalls for good; meanwhile do not spin on it.
    if (wait > 0ms) std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(wait, 5ms));
    return true;
  }
  std::string out;
  const bool more = s.events->next(out, wait);
  const auto now = std::chrono::steady_clock::now();
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
    // Nothing new last pass: block on the lead stream (streams[0]) until its next tokens.
    const bool wait_on_lead = !progressed && !added;
    progressed = added;
    for (size_t i = 0; i < streams.size();) {
      const bool before = progressed;
      progressed = false;
      const bool open = pump(streams[i], i == 0 && wait_on_lead ? kLeadWait : 0ms, progressed);
      // The first stream that had news leads the next wait: it is in the running batch.
      if (open && progressed && i > 0 && !before) std::swap(streams[0], streams[i]);
      progressed = progressed || before;
      if (open) {
        ++i;
      } else {
        streams[i] = std::move(streams.back());
        streams.pop_back();
      }
    }
  }
  for (auto& s : streams) s.events->cancel();
  std::lock_guard lock(mutex_);
  for (auto& s : incoming_) s.events->cancel();
}

}  // namespace fp4serve::server
