// The HTTP face of the server: routes, API-key check, error bodies, SSE
// streaming, client-disconnect detection, the connection cap and graceful
// drain. Transport: one Asio I/O thread runs every connection
// (server/http_connection.h, Boost.Beast's HTTP/1.1 parser); handlers that
// parse bodies or wait on generation run on a worker pool, and open SSE
// streams are fed by one pump thread (server/sse_pump.h), so a stream holds
// no thread. docs/ARCHITECTURE.md says why this library.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "runtime/scheduler.h"
#include "server/completion_service.h"
#include "server/http_limits.h"

namespace fp4serve::server {

struct HttpServerConfig {
  std::string host = "127.0.0.1";
  int port = 8000;       // 0: any free port (see bind())
  std::string api_key;   // empty: no authentication
  int threads = 0;       // handler workers; 0: max_num_seqs + max_waiting + 16
  HttpLimits limits;
};

class HttpServer {
 public:
  HttpServer(CompletionService& service, runtime::Scheduler& scheduler, runtime::SchedulerMetrics& metrics,
             HttpServerConfig config);
  ~HttpServer();

  // Binds the socket exclusively (no SO_REUSEPORT: a port in use is an error
  // naming host:port); returns the port (useful with port 0). Throws fp4serve::Error.
  int bind();
  // Serves until drain_and_stop(); blocks.
  void serve();
  // Graceful shutdown: refuse new requests (503), let queued and running ones
  // finish (up to `timeout`), then close the listener and every connection.
  void drain_and_stop(std::chrono::milliseconds timeout);
  bool draining() const { return draining_.load(); }

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> draining_{false};
};

}  // namespace fp4serve::server
