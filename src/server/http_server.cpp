#include "server/http_server.h"

#include <sys/resource.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cstdio>
#include <list>
#include <thread>

#include "server/api_error.h"
#include "server/http_connection.h"
#include "server/prometheus_metrics.h"
#include "server/sse_pump.h"
#include "server/worker_pool.h"

namespace fp4serve::server {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr int kListenBacklog = 1024;
// Connections past the cap that may be getting their 503 at once; beyond
// this many they are closed without one (the refusal must stay cheap).
constexpr int kMaxRefusalsInFlight = 64;
constexpr auto kRefusalLinger = 1s;
constexpr auto kAcceptRetry = 50ms;  // after EMFILE and the like

std::string dump(const json& body) { return body.dump(-1, ' ', false, json::error_handler_t::replace); }

HttpResponse error_response(const ApiError& error) {
  HttpResponse response{error.status(), "application/json", dump(error.to_json()), {}};
  if (error.status() == 429) response.headers.emplace_back("Retry-After", "1");
  return response;
}

HttpResponse json_response(const json& body) { return {200, "application/json", dump(body), {}}; }

// A connection past the cap: a 503 with a body, the unread request drained
// briefly so the close does not reset the answer away, then closed.
struct RefusedConnection : std::enable_shared_from_this<RefusedConnection> {
  RefusedConnection(tcp::socket s, std::string r, std::atomic<int>& n)
      : socket(std::move(s)), timer(socket.get_executor()), response(std::move(r)), in_flight(n) {
    ++in_flight;
  }
  ~RefusedConnection() { --in_flight; }
  void start() {
    timer.expires_after(kRefusalLinger);
    timer.async_wait([self = shared_from_this()](error_code) {
      error_code ignored;
      self->socket.close(ignored);
    });
    asio::async_write(socket, asio::buffer(response), [self = shared_from_this()](error_code ec, size_t) {
      if (ec) {
        self->timer.cancel();
        return;
      }
      error_code ignored;
      self->socket.shutdown(tcp::socket::shutdown_send, ignored);
      self->drain();
    });
  }
  void drain() {
    socket.async_read_some(asio::buffer(scratch), [self = shared_from_this()](error_code ec, size_t) {
      if (ec) {
        self->timer.cancel();
        return;
      }
      self->drain();
    });
  }
  tcp::socket socket;
  asio::steady_timer timer;
  std::string response;
  std::atomic<int>& in_flight;
  char scratch[4096];
};

// Each connection holds a descriptor: let the connection cap, not the
// process's soft descriptor limit (often 1024), be what refuses clients.
void raise_descriptor_limit(int max_connections) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t wanted = static_cast<rlim_t>(max_connections) + 256;
  if (limit.rlim_cur >= wanted) return;
  limit.rlim_cur = std::min(limit.rlim_max, wanted);
  setrlimit(RLIMIT_NOFILE, &limit);
}

}  // namespace

class HttpServer::Impl : public ConnectionHost {
 public:
  Impl(HttpServer& owner, CompletionService& service, runtime::Scheduler& scheduler,
       runtime::SchedulerMetrics& metrics, HttpServerConfig config)
      : owner_(owner),
        service_(service),
        scheduler_(scheduler),
        metrics_(metrics),
        config_(std::move(config)),
        acceptor_(io_),
        pool_(std::make_unique<WorkerPool>(worker_count())),
        pump_(std::make_unique<SsePump>(config_.limits.max_unsent_stream_bytes)) {}

  ~Impl() override {
    // Streams and handlers first: they hold connections, which report to this host.
    pump_.reset();
    pool_.reset();
  }

  const HttpLimits& limits() const override { return config_.limits; }

  int bind() {
    const HttpLimits& limits = config_.limits;
    FP4SERVE_CHECK(limits.max_header_bytes + limits.max_url_bytes <= kMaxHeaderSectionBytes,
                   "--max-header-bytes {} plus --max-url-bytes {} is over {}, the largest header section "
                   "Boost.Beast can hold",
                   limits.max_header_bytes, limits.max_url_bytes, kMaxHeaderSectionBytes);
    raise_descriptor_limit(config_.limits.max_connections);
    const std::string where = fmt::format("{}:{}", config_.host, config_.port);
    error_code ec;
    tcp::resolver resolver(io_);
    auto endpoints = resolver.resolve(config_.host, std::to_string(config_.port), tcp::resolver::passive, ec);
    FP4SERVE_CHECK(!ec && !endpoints.empty(), "cannot bind to {}: cannot resolve '{}': {}", where, config_.host,
                   ec.message());
    const tcp::endpoint endpoint = endpoints.begin()->endpoint();
    acceptor_.open(endpoint.protocol(), ec);
    FP4SERVE_CHECK(!ec, "cannot bind to {}: {}", where, ec.message());
    // SO_REUSEADDR only lets a restarted server take its port back from
    // TIME_WAIT; unlike SO_REUSEPORT it never lets two listeners share it.
    acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    acceptor_.bind(endpoint, ec);
    FP4SERVE_CHECK(!ec, "cannot bind to {}: {}", where, ec.message());
    acceptor_.listen(kListenBacklog, ec);
    FP4SERVE_CHECK(!ec, "cannot listen on {}: {}", where, ec.message());
    return acceptor_.local_endpoint().port();
  }

  void serve() {
    accept();
    // A handler that throws loses its connection, not the server.
    for (;;) {
      try {
        io_.run();
        return;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "fp4serve serve: internal error in the HTTP transport: %s\n", e.what());
      }
    }
  }

  void drain_and_stop(std::chrono::milliseconds timeout) {
    owner_.draining_.store(true);
    scheduler_.begin_drain();
    auto end = std::chrono::steady_clock::now() + timeout;
    scheduler_.wait_until_idle(
        std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()));
    // Let responses whose generation is over finish writing (a stream's [DONE]).
    while (counters_.open_responses.load() > 0 && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(10ms);
    asio::post(io_, [this] {
      error_code ignored;
      acceptor_.close(ignored);
      for (auto& weak : connections_) {
        if (auto connection = weak.lock()) connection->close();
      }
      connections_.clear();
      io_.stop();
    });
  }

  void dispatch(std::shared_ptr<HttpConnection> connection, HttpRequest request) override {
    const std::string& path = request.path;
    const bool get = request.method == "GET", post = request.method == "POST";
    if (get && path == "/health") {
      // 503 also once the model can run no more steps (a tensor-parallel group whose step
      // failed on one rank): a supervisor or load balancer takes it out and restarts it.
      return connection->respond({owner_.draining() || !scheduler_.model_unusable().empty() ? 503 : 200, {}, {}, {}});
    }
    if (get && path == "/metrics") {
      return on_worker(connection, std::move(request), false, [this](const HttpRequest&) {
        return HttpResponse{200, "text/plain; version=0.0.4",
                            render_prometheus(metrics_, scheduler_.load(), service_.config().served_model_name), {}};
      });
    }
    if (get && path == "/v1/models") {
      return on_worker(connection, std::move(request), true,
                       [this](const HttpRequest&) { return json_response(service_.models()); });
    }
    if (post && (path == "/v1/chat/completions" || path == "/v1/completions")) {
      const bool chat = path == "/v1/chat/completions";
      return on_worker(connection, std::move(request), true,
                       [this, chat, connection](const HttpRequest& r) -> std::optional<HttpResponse> {
                         return chat ? run_chat(connection, r) : run_completion(connection, r);
                       });
    }
    if (post && path == "/tokenize") {
      return on_worker(connection, std::move(request), true, [this](const HttpRequest& r) {
        return json_response(service_.tokenize(parse_tokenize_request(r.body, service_.config().sampling_defaults)));
      });
    }
    if (post && path == "/detokenize") {
      return on_worker(connection, std::move(request), true, [this](const HttpRequest& r) {
        return json_response(service_.detokenize(parse_detokenize_request(r.body)));
      });
    }
    connection->respond(error_response(ApiError(404, fmt::format("no route for {} {}", request.method, path))));
  }

 private:
  int worker_count() const {
    const auto& sc = scheduler_.config();
    return config_.threads > 0 ? config_.threads : sc.max_num_seqs + sc.max_waiting + 16;
  }

  // Runs a handler on the worker pool, turning every failure into an OpenAI
  // error body. A handler that returns nullopt has handed the connection to a stream.
  template <typename Handler>
  void on_worker(std::shared_ptr<HttpConnection> connection, HttpRequest request, bool needs_key, Handler handler) {
    pool_->post([this, connection = std::move(connection), request = std::move(request), needs_key,
                 handler = std::move(handler)]() mutable {
      std::optional<HttpResponse> response;
      try {
        if (needs_key && !authorized(request)) {
          throw ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", {}, "invalid_api_key");
        }
        response = handler(request);
      } catch (const ApiError& e) {
        response = error_response(e);
      } catch (const Error& e) {
        response = error_response(ApiError(400, e.what()));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "fp4serve serve: internal error on %s: %s\n", request.path.c_str(), e.what());
        response = error_response(ApiError(500, std::string("internal error: ") + e.what()));
      }
      if (response) connection->respond(std::move(*response));
    });
  }

  bool authorized(const HttpRequest& request) const {
    return config_.api_key.empty() || request.authorization == "Bearer " + config_.api_key;
  }

  std::optional<HttpResponse> run_chat(const std::shared_ptr<HttpConnection>& connection, const HttpRequest& r) {
    ChatRequest request = parse_chat_request(r.body, service_.config().sampling_defaults);
    if (request.options.stream) {
      pump_->add(connection, service_.chat_stream(request));
      return std::nullopt;
    }
    return json_response(service_.chat(request, [connection] { return connection->peer_gone(); }));
  }

  std::optional<HttpResponse> run_completion(const std::shared_ptr<HttpConnection>& connection,
                                             const HttpRequest& r) {
    CompletionRequest request = parse_completion_request(r.body, service_.config().sampling_defaults);
    if (request.options.stream) {
      pump_->add(connection, service_.completion_stream(request));
      return std::nullopt;
    }
    return json_response(service_.completion(request, [connection] { return connection->peer_gone(); }));
  }

  void accept() {
    acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      if (ec) {
        // Out of descriptors or memory: wait instead of spinning on the same error.
        auto timer = std::make_shared<asio::steady_timer>(io_, kAcceptRetry);
        timer->async_wait([this, timer](error_code) { accept(); });
        return;
      }
      admit(std::move(socket));
      accept();
    });
  }

  // Under the cap, or past it when an idle connection (keep-alive, or still
  // sending its headers) can make room: a slow client must not lock others out.
  void admit(tcp::socket socket) {
    if (counters_.live.load() >= config_.limits.max_connections && !evict_idlest()) {
      return refuse(std::move(socket));
    }
    auto connection = std::make_shared<HttpConnection>(std::move(socket), *this, counters_);
    if (connections_.size() > 2 * static_cast<size_t>(std::max(counters_.live.load(), 64))) {
      connections_.remove_if([](const std::weak_ptr<HttpConnection>& w) { return w.expired(); });
    }
    connections_.push_back(connection);
    connection->start();
  }

  bool evict_idlest() {
    std::shared_ptr<HttpConnection> idlest;
    for (auto it = connections_.begin(); it != connections_.end();) {
      auto connection = it->lock();
      if (!connection || connection->closed()) {
        it = connections_.erase(it);
        continue;
      }
      if (connection->evictable() && (!idlest || connection->waiting_since() < idlest->waiting_since())) {
        idlest = connection;
      }
      ++it;
    }
    if (!idlest) return false;
    idlest->close();
    return true;
  }

  void refuse(tcp::socket socket) {
    if (refusals_in_flight_.load() >= kMaxRefusalsInFlight) return;  // closing `socket` is the answer
    const std::string body = dump(
        ApiError(503, fmt::format("too many open connections ({}, --max-connections); retry later",
                                  config_.limits.max_connections),
                 {}, "too_many_connections")
            .to_json());
    std::string response = fmt::format(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
        "Retry-After: 1\r\nConnection: close\r\n\r\n{}",
        body.size(), body);
    std::make_shared<RefusedConnection>(std::move(socket), std::move(response), refusals_in_flight_)->start();
  }

  HttpServer& owner_;
  CompletionService& service_;
  runtime::Scheduler& scheduler_;
  runtime::SchedulerMetrics& metrics_;
  HttpServerConfig config_;
  // Declared before io_ so they outlive the handlers it destroys.
  ConnectionCounters counters_;
  std::atomic<int> refusals_in_flight_{0};
  asio::io_context io_{1};
  tcp::acceptor acceptor_;
  std::list<std::weak_ptr<HttpConnection>> connections_;  // I/O thread only
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<SsePump> pump_;
};

HttpServer::HttpServer(CompletionService& service, runtime::Scheduler& scheduler, runtime::SchedulerMetrics& metrics,
                       HttpServerConfig config)
    : impl_(std::make_unique<Impl>(*this, service, scheduler, metrics, std::move(config))) {}

HttpServer::~HttpServer() = default;

int HttpServer::bind() { return impl_->bind(); }
void HttpServer::serve() { impl_->serve(); }
void HttpServer::drain_and_stop(std::chrono::milliseconds timeout) { impl_->drain_and_stop(timeout); }

}  // namespace fp4serve::server
