#include "server/http_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "server/api_error.h"
#include "server/prometheus_metrics.h"

namespace fp4serve::server {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr auto kStreamPoll = 50ms;
constexpr auto kKeepAliveEvery = 5s;

std::string address_string(const sockaddr_storage& a, int* port) {
  char host[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    *port = ntohs(in->sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    *port = ntohs(in6->sin6_port);
  }
  return host;
}

// cpp-httplib 0.11 gives handlers no access to their connection, so a client
// that hangs up while its plain response is being generated would go
// unnoticed. The request does carry both endpoints' addresses: find the
// socket with that peer among our descriptors (once per request).
int find_connection_socket(const httplib::Request& req) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  int found = -1;
  while (dirent* entry = readdir(dir)) {
    int fd = std::atoi(entry->d_name);
    if (fd <= 2 || fd == dirfd(dir)) continue;
    sockaddr_storage peer{}, local{};
    socklen_t peer_length = sizeof peer, local_length = sizeof local;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_length) != 0) continue;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_length) != 0) continue;
    int peer_port = -1, local_port = -1;
    std::string peer_host = address_string(peer, &peer_port);
    address_string(local, &local_port);
    if (peer_port == req.remote_port && local_port == req.local_port && peer_host == req.remote_addr) {
      found = fd;
      break;
    }
  }
  closedir(dir);
  return found;
}

// True once the peer has closed (or reset) the connection. Pending bytes
// (a pipelined request) mean the client is still there.
bool peer_closed(int fd) {
  if (fd < 0) return false;
  char byte;
  ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return false;
  if (n == 0) return true;
  return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

void send_error(httplib::Response& res, const ApiError& error) {
  res.status = error.status();
  if (error.status() == 429) res.set_header("Retry-After", "1");
  res.set_content(error.to_json().dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_json(httplib::Response& res, const json& body) {
  res.status = 200;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

// cpp-httplib 0.11 listens with a backlog of 5, fixed inside the library: a
// burst of connections beyond it waits for TCP's SYN retry (one second). The
// listening socket is a protected member, so widen the backlog after binding.
class WideBacklogServer : public httplib::Server {
 public:
  void widen_backlog(int backlog) { ::listen(svr_sock_, backlog); }
};

constexpr int kListenBacklog = 1024;

}  // namespace

class HttpServer::Impl {
 public:
  Impl(HttpServer& owner, CompletionService& service, runtime::Scheduler& scheduler,
       runtime::SchedulerMetrics& metrics, HttpServerConfig config)
      : owner_(owner), service_(service), scheduler_(scheduler), metrics_(metrics), config_(std::move(config)) {
    const auto& sc = scheduler_.config();
    int threads = config_.threads > 0 ? config_.threads : sc.max_num_seqs + sc.max_waiting + 16;
    server_.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    server_.set_payload_max_length(config_.max_body_bytes);
    server_.set_read_timeout(30, 0);
    server_.set_write_timeout(30, 0);
    server_.set_keep_alive_timeout(5);
    server_.set_keep_alive_max_count(1000);
    routes();
  }

  int bind() {
    int port = config_.port;
    if (port == 0) {
      port = server_.bind_to_any_port(config_.host);
      FP4SERVE_CHECK(port > 0, "cannot bind to {} on any port", config_.host);
    } else {
      FP4SERVE_CHECK(server_.bind_to_port(config_.host, port), "cannot bind to {}:{} (in use or not allowed?)",
                     config_.host, port);
    }
    server_.widen_backlog(kListenBacklog);
    return port;
  }
  void serve() { server_.listen_after_bind(); }

  void drain_and_stop(std::chrono::milliseconds timeout) {
    owner_.draining_.store(true);
    scheduler_.begin_drain();
    auto end = std::chrono::steady_clock::now() + timeout;
    scheduler_.wait_until_idle(std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()));
    // Let responses whose generation is over finish writing (a stream's [DONE]).
    while (open_responses_.load() > 0 && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(10ms);
    server_.stop();
  }

 private:
  // Counts a response from the start of its handler to its last byte.
  struct OpenResponse {
    explicit OpenResponse(std::atomic<int>& n) : n_(&n) { ++*n_; }
    ~OpenResponse() { --*n_; }
    std::atomic<int>* n_;
  };

  bool authorized(const httplib::Request& req, httplib::Response& res) {
    if (config_.api_key.empty()) return true;
    if (req.get_header_value("Authorization") == "Bearer " + config_.api_key) return true;
    send_error(res, ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", {}, "invalid_api_key"));
    return false;
  }

  // Runs a JSON endpoint, turning every failure into an OpenAI error body.
  template <typename Body>
  void guarded(const httplib::Request& req, httplib::Response& res, bool needs_key, Body body) {
    OpenResponse open(open_responses_);
    try {
      if (needs_key && !authorized(req, res)) return;
      body();
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const Error& e) {
      send_error(res, ApiError(400, e.what()));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "fp4serve serve: internal error on %s: %s\n", req.path.c_str(), e.what());
      send_error(res, ApiError(500, std::string("internal error: ") + e.what()));
    }
  }

  void stream(const httplib::Request& req, httplib::Response& res, std::unique_ptr<EventSource> source) {
    const int fd = find_connection_socket(req);
    std::shared_ptr<EventSource> events(std::move(source));
    auto open = std::make_shared<OpenResponse>(open_responses_);
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [events, fd, last_write = std::chrono::steady_clock::now()](size_t, httplib::DataSink& sink) mutable {
          std::string out;
          bool more = events->next(out, kStreamPoll);
          auto now = std::chrono::steady_clock::now();
          if (out.empty() && more && now - last_write >= kKeepAliveEvery) out = ": keep-alive\n\n";
          if (!out.empty()) {
            last_write = now;
            if (!sink.write(out.data(), out.size())) {
              events->cancel();
              return false;
            }
          }
          if (!more) {
            sink.done();
            return true;
          }
          if (peer_closed(fd)) {
            events->cancel();
            return false;
          }
          return true;
        },
        [events, open](bool success) {
          if (!success) events->cancel();
        });
  }

  void routes() {
    server_.Get("/health", [this](const httplib::Request& req, httplib::Response& res) {
      res.status = owner_.draining() ? 503 : 200;
    });
    server_.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(req, res, true, [&] { send_json(res, service_.models()); });
    });
    server_.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
      res.set_content(render_prometheus(metrics_, scheduler_.load(), service_.config().served_model_name),
                      "text/plain; version=0.0.4");
    });
    server_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(req, res, true, [&] {
        ChatRequest request = parse_chat_request(req.body, service_.config().sampling_defaults);
        if (request.options.stream) return stream(req, res, service_.chat_stream(request));
        int fd = find_connection_socket(req);
        send_json(res, service_.chat(request, [fd] { return peer_closed(fd); }));
      });
    });
    server_.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(req, res, true, [&] {
        CompletionRequest request = parse_completion_request(req.body, service_.config().sampling_defaults);
        if (request.options.stream) return stream(req, res, service_.completion_stream(request));
        int fd = find_connection_socket(req);
        send_json(res, service_.completion(request, [fd] { return peer_closed(fd); }));
      });
    });
    server_.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(req, res, true, [&] { send_json(res, service_.tokenize(parse_tokenize_request(req.body, service_.config().sampling_defaults))); });
    });
    server_.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(req, res, true, [&] { send_json(res, service_.detokenize(parse_detokenize_request(req.body))); });
    });
    // Unknown routes and library-level refusals (413 body too large, 400
    // unparsable HTTP) get an OpenAI error body too.
    server_.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string message = res.status == 404   ? fmt::format("no route for {} {}", req.method, req.path)
                            : res.status == 413 ? std::string("the request body is too large")
                                                : fmt::format("HTTP {}", res.status);
      res.set_content(ApiError(res.status, message).to_json().dump(), "application/json");
    });
    server_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
      send_error(res, ApiError(500, "internal error"));
    });
  }

  HttpServer& owner_;
  CompletionService& service_;
  runtime::Scheduler& scheduler_;
  runtime::SchedulerMetrics& metrics_;
  HttpServerConfig config_;
  WideBacklogServer server_;
  std::atomic<int> open_responses_{0};
};

HttpServer::HttpServer(CompletionService& service, runtime::Scheduler& scheduler, runtime::SchedulerMetrics& metrics,
                       HttpServerConfig config)
    : impl_(std::make_unique<Impl>(*this, service, scheduler, metrics, std::move(config))) {}

HttpServer::~HttpServer() = default;

int HttpServer::bind() { return impl_->bind(); }
void HttpServer::serve() { impl_->serve(); }
void HttpServer::drain_and_stop(std::chrono::milliseconds timeout) { impl_->drain_and_stop(timeout); }

}  // namespace fp4serve::server
