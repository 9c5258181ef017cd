// Moves the events of every open SSE stream from the scheduler to the client
// connections on one thread, so an open stream holds no thread of its own.
// The service's EventSource can only be polled: the pump polls every stream
// without waiting, but only when the scheduler has produced tokens since its
// last pass (a cheap counter), a stream is new, or a slow tick has passed
// (finishes without a token: timeouts, errors); a stream whose client does not
// read is skipped until its unsent bytes drain.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "server/completion_service.h"
#include "server/http_connection.h"

namespace fp4serve::server {

class SsePump {
 public:
  // `progress`: a count that grows whenever the scheduler produces tokens.
  SsePump(size_t max_unsent_bytes, std::function<uint64_t()> progress);
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
  // One poll of one stream; false once it is over (ended, or its client gone).
  bool pump(Stream& stream, std::chrono::steady_clock::time_point now, bool& progressed);

  const size_t max_unsent_bytes_;
  const std::function<uint64_t()> progress_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Stream> incoming_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace fp4serve::server
