// The HTTP face of the server (cpp-httplib 0.11): routes, API-key check,
// error bodies, SSE streaming, client-disconnect detection and graceful drain.
// cpp-httplib runs one blocking worker per connection, so an open stream pins
// a worker: the pool is sized explicitly from the scheduler's limits.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "runtime/scheduler.h"
#include "server/completion_service.h"

namespace fp4serve::server {

struct HttpServerConfig {
  std::string host = "127.0.0.1";
  int port = 8000;       // 0: any free port (see bind())
  std::string api_key;   // empty: no authentication
  int threads = 0;       // 0: max_num_seqs + max_waiting + 16
  size_t max_body_bytes = 64u << 20;
};

class HttpServer {
 public:
  HttpServer(CompletionService& service, runtime::Scheduler& scheduler, runtime::SchedulerMetrics& metrics,
             HttpServerConfig config);
  ~HttpServer();

  // Binds the socket; returns the port (useful with port 0). Throws fp4serve::Error.
  int bind();
  // Serves until stop() or drain_and_stop(); blocks.
  void serve();
  // Graceful shutdown: refuse new requests (503), let queued and running ones
  // finish (up to `timeout`), then close the listener.
  void drain_and_stop(std::chrono::milliseconds timeout);
  bool draining() const { return draining_.load(); }

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> draining_{false};
};

}  // namespace fp4serve::server
