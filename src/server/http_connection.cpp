#include "server/http_connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cerrno>
#include <optional>

#include "server/api_error.h"

namespace fp4serve::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using boost::system::error_code;

// After an error response that closes the connection, unread request bytes
// would make the kernel answer with a reset that can destroy the response in
// flight; read and drop this much (for at most this long) before closing.
constexpr size_t kLingerBytes = size_t{1} << 20;
constexpr auto kLingerTime = std::chrono::seconds(2);
// Room in the read buffer beyond the header limits, for pipelined requests.
constexpr size_t kReadSlack = size_t{64} << 10;

std::string status_line(int status) {
  beast::string_view reason = http::obsolete_reason(static_cast<http::status>(status));
  return fmt::format("HTTP/1.1 {} {}\r\n", status, std::string_view(reason.data(), reason.size()));
}

std::string error_body(int status, const std::string& message) {
  return ApiError(status, message).to_json().dump();
}

bool is_disconnect(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
         ec == asio::error::broken_pipe || ec == beast::error::timeout;
}

}  // namespace

struct HttpConnection::Io {
  Io(asio::ip::tcp::socket socket, size_t buffer_limit) : stream(std::move(socket)), buffer(buffer_limit) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  std::optional<http::request_parser<http::string_body>> parser;
  std::vector<char> scratch;  // lingering close
};

HttpConnection::HttpConnection(asio::ip::tcp::socket socket, ConnectionHost& host, ConnectionCounters& counters)
    : host_(host), counters_(counters) {
  const HttpLimits& limits = host.limits();
  native_socket_ = socket.native_handle();
  io_ = std::make_unique<Io>(std::move(socket),
                             limits.max_header_bytes + limits.max_url_bytes + kReadSlack);
  ++counters_.live;
}

HttpConnection::~HttpConnection() {
  response_closed();
  --counters_.live;
}

template <typename Task>
void HttpConnection::on_io_thread(Task task) {
  asio::post(io_->stream.get_executor(), [self = shared_from_this(), task = std::move(task)]() mutable { task(); });
}

void HttpConnection::start() {
  // SSE pieces are small and latency matters more than packet count.
  error_code ignored;
  io_->stream.socket().set_option(asio::ip::tcp::no_delay(true), ignored);
  read_request();
}

void HttpConnection::read_request() {
  const HttpLimits& limits = host_.limits();
  phase_ = Phase::kHeaders;
  waiting_since_ = std::chrono::steady_clock::now();
  response_complete_ = close_after_write_ = head_request_ = false;
  io_->parser.emplace();
  // Beast counts the request line in its header limit; the target has its own (checked below).
  io_->parser->header_limit(static_cast<uint32_t>(limits.max_header_bytes + limits.max_url_bytes));
  io_->parser->body_limit(limits.max_body_bytes);
  io_->stream.expires_after(limits.header_timeout);
  http::async_read_header(io_->stream, io_->buffer, *io_->parser,
                          [self = shared_from_this()](error_code ec, size_t) { self->on_header(ec); });
}

void HttpConnection::on_header(error_code ec) {
  if (closed_) return;
  const HttpLimits& limits = host_.limits();
  if (ec) {
    // A header deadline that passes closes the socket (Beast's timeout), with no answer: the
    // client was idle or too slow, and every byte we send it costs us as much as it.
    if (is_disconnect(ec)) return close();
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      // Beast parses the request line on its own first: no target yet means it is the line that is too long.
      if (io_->parser->get().target().empty()) {
        return refuse(414, fmt::format("the request URL is longer than {} bytes (--max-url-bytes)",
                                       limits.max_url_bytes));
      }
      return refuse(431, fmt::format("the request headers are larger than {} bytes (--max-header-bytes)",
                                     limits.max_header_bytes));
    }
    if (ec == http::error::body_limit) {
      return refuse(413, fmt::format("the request body is too large: its Content-Length is over {} bytes "
                                     "(--max-body-bytes)",
                                     limits.max_body_bytes));
    }
    return refuse(400, "malformed HTTP request: " + ec.message());
  }
  phase_ = Phase::kBody;
  const auto& request = io_->parser->get();
  if (request.target().size() > limits.max_url_bytes) {
    return refuse(414, fmt::format("the request URL is longer than {} bytes (--max-url-bytes)", limits.max_url_bytes));
  }
  // Beast's limit covers the request line and the fields together; each has its own.
  size_t field_bytes = 0;
  for (const auto& field : request) field_bytes += field.name_string().size() + field.value().size() + 4;
  if (field_bytes > limits.max_header_bytes) {
    return refuse(431, fmt::format("the request headers are larger than {} bytes (--max-header-bytes)",
                                   limits.max_header_bytes));
  }
  // Request smuggling patterns (RFC 9112 6.3): a body length two parties could read differently.
  const size_t lengths = request.count(http::field::content_length);
  const bool has_transfer_encoding = request.count(http::field::transfer_encoding) > 0;
  if (lengths > 1) return refuse(400, "more than one Content-Length header");
  if (lengths == 1 && request[http::field::content_length].find(',') != beast::string_view::npos) {
    return refuse(400, "a Content-Length header with several values");
  }
  if (has_transfer_encoding && lengths > 0) return refuse(400, "both Content-Length and Transfer-Encoding headers");
  if (has_transfer_encoding && !io_->parser->chunked()) {
    return refuse(400, "a Transfer-Encoding whose last coding is not chunked");
  }
  const bool may_have_body = request.method() != http::verb::get && request.method() != http::verb::head;
  if (may_have_body && lengths == 0 && !has_transfer_encoding) {
    return refuse(411, "a POST needs a Content-Length header (or Transfer-Encoding: chunked)");
  }
  if (beast::iequals(request[http::field::expect], "100-continue")) {
    auto interim = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
    io_->stream.expires_after(limits.write_timeout);
    asio::async_write(io_->stream, asio::buffer(*interim), [self = shared_from_this(), interim](error_code ec, size_t) {
      if (ec) return self->close();
      self->read_body();
    });
    return;
  }
  read_body();
}

void HttpConnection::read_body() {
  if (closed_) return;
  if (io_->parser->is_done()) return on_body({});
  io_->stream.expires_after(host_.limits().body_timeout);
  http::async_read(io_->stream, io_->buffer, *io_->parser,
                   [self = shared_from_this()](error_code ec, size_t) { self->on_body(ec); });
}

void HttpConnection::on_body(error_code ec) {
  if (closed_) return;
  if (ec) {
    if (is_disconnect(ec)) return close();
    if (ec == http::error::body_limit) {
      return refuse(413, fmt::format("the request body is too large: over {} bytes (--max-body-bytes)",
                                     host_.limits().max_body_bytes));
    }
    return refuse(400, "malformed HTTP request body: " + ec.message());
  }
  auto& message = io_->parser->get();
  HttpRequest request;
  request.method = std::string(message.method_string());
  std::string_view target(message.target().data(), message.target().size());
  request.path = std::string(target.substr(0, target.find('?')));
  auto authorization = message[http::field::authorization];
  request.authorization.assign(authorization.data(), authorization.size());
  request.body = std::move(message.body());
  keep_alive_ = message.keep_alive();
  http10_ = message.version() == 10;
  head_request_ = message.method() == http::verb::head;
  io_->parser.reset();

  phase_ = Phase::kHandling;
  io_->stream.expires_never();
  response_open_ = true;
  ++counters_.open_responses;
  host_.dispatch(shared_from_this(), std::move(request));
}

void HttpConnection::refuse(int status, const std::string& message) {
  phase_ = Phase::kClosing;
  HttpResponse response{status, "application/json", error_body(status, message), {}};
  write_response(response, true);
}

void HttpConnection::respond(HttpResponse response) {
  on_io_thread([this, response = std::move(response)] {
    if (closed_) return response_closed();
    write_response(response, !keep_alive_);
  });
}

void HttpConnection::write_response(const HttpResponse& response, bool close_after) {
  std::string bytes = status_line(response.status);
  if (!response.content_type.empty()) bytes += "Content-Type: " + response.content_type + "\r\n";
  bytes += fmt::format("Content-Length: {}\r\n", response.body.size());
  for (const auto& [name, value] : response.headers) bytes += name + ": " + value + "\r\n";
  if (close_after) {
    bytes += "Connection: close\r\n";
  } else {
    // Clients that honour the hint close an idle connection before our header deadline
    // does, instead of racing a new request against our close.
    if (http10_) bytes += "Connection: keep-alive\r\n";
    const auto idle = std::chrono::duration_cast<std::chrono::seconds>(host_.limits().header_timeout).count();
    bytes += fmt::format("Keep-Alive: timeout={}\r\n", std::max<int64_t>(1, idle));
  }
  bytes += "\r\n";
  if (!head_request_) bytes += response.body;
  close_after_write_ = close_after;
  response_complete_ = true;
  queue_write(std::move(bytes));
}

void HttpConnection::start_stream(std::string content_type) {
  on_io_thread([this, content_type = std::move(content_type)] {
    if (closed_) return;
    // HTTP/1.0 has no chunked coding: the end of the stream is the end of the connection.
    close_after_write_ = http10_ || !keep_alive_;
    std::string bytes = status_line(200) + "Content-Type: " + content_type + "\r\nCache-Control: no-cache\r\n";
    if (!http10_) bytes += "Transfer-Encoding: chunked\r\n";
    if (close_after_write_) bytes += "Connection: close\r\n";
    bytes += "\r\n";
    queue_write(std::move(bytes));
  });
}

void HttpConnection::stream_write(std::string data) {
  if (data.empty()) return;
  unsent_bytes_ += data.size();
  on_io_thread([this, data = std::move(data)] {
    if (closed_) return;
    outbox_payload_ += data.size();
    queue_write(http10_ ? data : fmt::format("{:x}\r\n{}\r\n", data.size(), data));
  });
}

void HttpConnection::stream_end() {
  on_io_thread([this] {
    if (closed_) return response_closed();
    response_complete_ = true;
    if (!http10_) return queue_write("0\r\n\r\n");
    if (!writing_) flush();
  });
}

void HttpConnection::queue_write(std::string bytes) {
  outbox_ += bytes;
  if (!writing_) flush();
}

void HttpConnection::flush() {
  if (closed_) return;
  if (outbox_.empty()) {
    if (response_complete_) finish_response();
    return;
  }
  writing_ = true;
  sending_.swap(outbox_);
  outbox_.clear();
  sending_payload_ = outbox_payload_;
  outbox_payload_ = 0;
  io_->stream.expires_after(host_.limits().write_timeout);
  asio::async_write(io_->stream, asio::buffer(sending_),
                    [self = shared_from_this()](error_code ec, size_t) { self->on_written(ec); });
}

void HttpConnection::on_written(error_code ec) {
  writing_ = false;
  unsent_bytes_ -= sending_payload_;
  sending_payload_ = 0;
  sending_.clear();
  if (ec) return close();
  flush();
}

void HttpConnection::finish_response() {
  response_closed();
  if (close_after_write_) return linger_and_close();
  io_->stream.expires_never();
  read_request();
}

void HttpConnection::linger_and_close() {
  if (closed_) return;
  phase_ = Phase::kClosing;
  error_code ignored;
  io_->stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  io_->scratch.resize(16 << 10);
  io_->stream.expires_after(kLingerTime);
  linger_read();
}

void HttpConnection::linger_read() {
  io_->stream.async_read_some(asio::buffer(io_->scratch), [self = shared_from_this()](error_code ec, size_t n) {
    self->lingered_bytes_ += n;
    if (ec || self->lingered_bytes_ >= kLingerBytes) return self->close();
    self->linger_read();
  });
}

void HttpConnection::close() {
  if (closed_.exchange(true)) return;
  phase_ = Phase::kClosing;
  error_code ignored;
  io_->stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  io_->stream.close();
  response_closed();
}

void HttpConnection::abort() {
  on_io_thread([this] { close(); });
}

void HttpConnection::response_closed() {
  if (!response_open_) return;
  response_open_ = false;
  --counters_.open_responses;
}

bool HttpConnection::peer_gone() const {
  if (closed_) return true;
  char byte;
  ssize_t n = recv(native_socket_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return false;  // pipelined bytes: the client is still there
  if (n == 0) return true;
  return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

}  // namespace fp4serve::server
