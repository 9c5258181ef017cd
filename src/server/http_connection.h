// One client connection of the HTTP/1.1 server: reads requests with
// whole-phase deadlines and byte limits (Boost.Beast's parser over Asio),
// hands each complete request to its host, and writes the responses back in
// request order (RFC 9112 pipelining: the next request is read only once the
// previous response is written). All socket work runs on the server's one I/O
// thread; respond() and the stream calls may come from any thread.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "server/http_limits.h"

namespace fp4serve::server {

struct HttpRequest {
  std::string method;
  std::string path;  // the target without its query
  std::string authorization;
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type;  // empty: no body
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

class HttpConnection;

// What a connection needs from its server.
class ConnectionHost {
 public:
  virtual ~ConnectionHost() = default;
  virtual const HttpLimits& limits() const = 0;
  // A complete request: the host must answer it with respond() or a stream.
  virtual void dispatch(std::shared_ptr<HttpConnection> connection, HttpRequest request) = 0;
};

// The server's counts a connection keeps up to date; they outlive every connection.
struct ConnectionCounters {
  std::atomic<int> live{0};            // open connections (the cap)
  std::atomic<int> open_responses{0};  // dispatched requests not yet fully answered (drain waits on them)
};

class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  HttpConnection(boost::asio::ip::tcp::socket socket, ConnectionHost& host, ConnectionCounters& counters);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // I/O thread: reads the first request.
  void start();
  // I/O thread: true while the connection waits for a request's headers (idle
  // keep-alive or a partial header), the only state in which evicting it loses no work.
  bool evictable() const { return phase_ == Phase::kHeaders; }
  std::chrono::steady_clock::time_point waiting_since() const { return waiting_since_; }
  // I/O thread: closes at once (eviction under the connection cap, shutdown).
  void close();
  // Any thread: close() on the I/O thread (the client of a stream went away).
  void abort();

  // Any thread: the answer to the current request.
  void respond(HttpResponse response);
  // Any thread: a streamed answer (200, chunked), then its pieces, then its end.
  void start_stream(std::string content_type);
  void stream_write(std::string data);
  void stream_end();
  // Stream bytes queued but not yet written (the producer backs off past a bound).
  size_t unsent_bytes() const { return unsent_bytes_.load(); }
  // Any thread: the connection is gone (closed by us or by a failed write).
  bool closed() const { return closed_.load(); }
  // Any thread, while a request is being answered: the client hung up.
  bool peer_gone() const;

 private:
  enum class Phase { kHeaders, kBody, kHandling, kClosing };
  struct Io;  // the Beast stream, buffer and parser (kept out of this header)

  void read_request();
  void on_header(boost::system::error_code ec);
  void read_body();
  void on_body(boost::system::error_code ec);
  void refuse(int status, const std::string& message);
  void write_response(const HttpResponse& response, bool close_after);
  void queue_write(std::string bytes);
  void flush();
  void on_written(boost::system::error_code ec);
  void finish_response();
  void linger_and_close();
  void linger_read();
  void response_closed();
  template <typename Task>
  void on_io_thread(Task task);

  std::unique_ptr<Io> io_;
  ConnectionHost& host_;
  ConnectionCounters& counters_;
  Phase phase_ = Phase::kHeaders;
  std::chrono::steady_clock::time_point waiting_since_;
  bool keep_alive_ = true;
  bool http10_ = false;
  bool head_request_ = false;
  bool response_open_ = false;   // counted in counters_.open_responses
  bool close_after_write_ = false;
  bool writing_ = false;
  bool response_complete_ = false;  // every byte of the current response is queued
  std::string outbox_;   // queued, not yet handed to the socket
  std::string sending_;  // being written
  size_t outbox_payload_ = 0;   // stream bytes (without chunk framing) in outbox_
  size_t sending_payload_ = 0;  // and in sending_
  size_t lingered_bytes_ = 0;
  std::atomic<size_t> unsent_bytes_{0};
  std::atomic<bool> closed_{false};
  int native_socket_ = -1;
};

}  // namespace fp4serve::server
