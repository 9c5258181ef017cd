// Moves the events of every open SSE stream from the scheduler to the client
// connections on one thread, so an open stream holds no thread of its own.
// The service's EventSource can only be polled, one stream at a time: when a
// pass finds nothing new, the pump blocks on one stream that recently had
// tokens (the scheduler gives every running sequence its token at the end of
// a step, so that stream wakes it once per step) for at most 50 ms, then polls
// every stream without waiting. A timer tick instead (every 2 ms) cost the CPU
// model's spinning thread pool 15-20% of throughput at concurrency 1 on 2 vCPUs.
// A stream whose client does not read is skipped until its unsent bytes drain.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "server/completion_service.h"
#include "server/http_connection.h"

namespace fp4serve::server {

class SsePump {
 public:
  explicit SsePump(size_t max_unsent_bytes);
  ~SsePump();  // cancels the streams still open
  SsePump(const SsePump&) = delete;
  SsePump& operator=(const SsePump&) = delete;

  // Sends the stream's response head now and its events as they come.
  void add(std::shared_ptr<HttpConnection> connection, std::unique_ptr<EventSource> events);

 private:
  struct Stream {
    std::shared_ptr<HttpConnection> connection;
    std::unique_ptr<EventSource> events;
    std::chrono::steady_clock::time_point last_write;
    std::chrono::steady_clock::time_point last_peer_check;
  };
  void run();
  // One poll of one stream, waiting up to `wait` for its events; false once it
  // is over (ended, or its client gone).
  bool pump(Stream& stream, std::chrono::milliseconds wait, bool& progressed);

  const size_t max_unsent_bytes_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Stream> incoming_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace fp4serve::server
