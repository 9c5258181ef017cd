// Hostile clients against a live server (loopback, fake model): a port in
// use, a nesting bomb, slow clients past the connection cap, whole-phase
// deadlines, the cap's refusal, and memory over a thousand requests. Each
// test bounds its own time; servers are stopped when the test ends.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "raw_http.h"
#include "server_process.h"

namespace fp4serve::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(HostileClients, SecondServerOnAPortInUseExitsNamingIt) {
  ServerProcess first;
  const std::string port = std::to_string(first.port());
  ProcessResult second = run_fp4serve({"serve", "--fake-model", "--host", "127.0.0.1", "--port", port}, 10s);
  ASSERT_TRUE(second.exit_code) << "the second server kept running: the port was shared. Output: " << second.output;
  EXPECT_NE(*second.exit_code, 0);
  EXPECT_NE(second.output.find("127.0.0.1:" + port), std::string::npos) << second.output;
  // The first one still has the port to itself.
  RawConnection probe(first.port());
  ASSERT_TRUE(probe.send(get_request("/health")));
  auto response = probe.read_response(2s);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

TEST(HostileClients, NestingBombInAnIgnoredFieldKeepsMemoryBounded) {
#ifdef __SANITIZE_ADDRESS__
  GTEST_SKIP() << "AddressSanitizer's shadow memory makes the RSS bound meaningless";
#endif
  // A cap on the child's address space, so that without a defence the test fails
  // (allocation failure) instead of taking the machine's memory.
  ServerProcess server({.args = {"--http-threads", "2"}, .address_space_limit = uint64_t{3} << 30});
  const int64_t before_kib = server.rss_kib();
  const size_t depth = 64'000'000;
  std::string body = R"({"prompt": "hi", "max_tokens": 1, "ignored": )";
  body.append(depth, '[');
  body += "}";
  RawConnection connection(server.port());
  std::thread sender([&] { connection.send(post_request("/v1/completions", body)); });
  auto response = connection.read_response(60s);
  shutdown(connection.fd(), SHUT_RDWR);
  sender.join();
  ASSERT_TRUE(response) << "no response to the nesting bomb";
  EXPECT_EQ(response->status, 400) << response->body.substr(0, 300);
  // Bound: the 64 MB body held about twice (read buffer and request) plus parser state
  // proportional to a limited depth; the issue saw 6.1 GB.
  const int64_t peak_growth_mib = (server.peak_rss_kib() - before_kib) / 1024;
  EXPECT_LT(peak_growth_mib, 256) << "peak RSS grew by " << peak_growth_mib << " MiB";
  std::this_thread::sleep_for(200ms);
  const int64_t left_mib = (server.rss_kib() - before_kib) / 1024;
  EXPECT_LT(left_mib, 64) << "RSS still " << left_mib << " MiB above its start after the request";
}

// One header byte per second on each connection, from one thread.
class SlowClients {
 public:
  SlowClients(int port, int count) {
    for (int i = 0; i < count; ++i) connections_.push_back(std::make_unique<RawConnection>(port));
    thread_ = std::thread([this] {
      const std::string request = get_request("/health");
      for (size_t sent = 0; !stop_.load() && sent < request.size(); ++sent) {
        for (auto& c : connections_) c->send(std::string_view(&request[sent], 1));
        for (int i = 0; i < 10 && !stop_.load(); ++i) std::this_thread::sleep_for(100ms);
      }
    });
  }
  ~SlowClients() {
    stop_.store(true);
    thread_.join();
  }
  size_t closed_within(std::chrono::milliseconds timeout) {
    size_t closed = 0;
    for (auto& c : connections_) closed += c->closed_by_peer(timeout) ? 1 : 0;
    return closed;
  }

 private:
  std::vector<std::unique_ptr<RawConnection>> connections_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(HostileClients, SlowClientsAtTwiceTheCapLeaveAProbeAnsweredWithinASecond) {
  ServerProcess server({.args = {"--max-connections", "16", "--http-threads", "8", "--header-timeout", "30"}});
  SlowClients slow(server.port(), 32);
  std::this_thread::sleep_for(2500ms);  // every slow client has sent a few bytes
  for (const char* path : {"/health", "/v1/models"}) {
    const auto start = Clock::now();
    RawConnection probe(server.port());
    ASSERT_TRUE(probe.send(get_request(path)));
    auto response = probe.read_response(1s);
    ASSERT_TRUE(response) << "no answer to " << path << " within 1 s";
    EXPECT_EQ(response->status, 200);
    EXPECT_LT(Clock::now() - start, 1s);
  }
  RawConnection probe(server.port());
  ASSERT_TRUE(probe.send(post_request("/tokenize", R"({"prompt": "hi"})")));
  auto response = probe.read_response(1s);
  ASSERT_TRUE(response) << "no answer to a POST within 1 s";
  EXPECT_EQ(response->status, 200);
}

TEST(HostileClients, HeaderDeadlineCoversTheWholeHeaderNotEachByte) {
  ServerProcess server({.args = {"--header-timeout", "2"}});
  SlowClients slow(server.port(), 4);
  // Bytes keep coming every second; the deadline still closes them at 2 s.
  EXPECT_EQ(slow.closed_within(4s), 4u);
}

TEST(HostileClients, BodyDeadlineCoversTheWholeBody) {
  ServerProcess server({.args = {"--body-timeout", "2"}});
  RawConnection connection(server.port());
  ASSERT_TRUE(connection.send("POST /tokenize HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n"));
  const auto start = Clock::now();
  bool closed = false;
  while (!closed && Clock::now() - start < 5s) {
    connection.send("x");
    closed = connection.closed_by_peer(500ms);
  }
  EXPECT_TRUE(closed);
  EXPECT_LT(Clock::now() - start, 3500ms);
}

TEST(HostileClients, PastTheCapWithNoIdleConnectionTheRefusalIs503WithABody) {
  // Two slow streams hold both connections; neither is idle, so a third gets the refusal.
  ServerProcess server({.args = {"--max-connections", "2", "--fake-model-step-delay-us", "100000"}});
  std::vector<std::unique_ptr<RawConnection>> busy;
  for (int i = 0; i < 2; ++i) {
    busy.push_back(std::make_unique<RawConnection>(server.port()));
    ASSERT_TRUE(busy.back()->send(
        post_request("/v1/completions", R"({"prompt": "hi", "max_tokens": 30, "stream": true, "ignore_eos": true})")));
  }
  std::this_thread::sleep_for(300ms);
  RawConnection third(server.port());
  third.send(get_request("/health"));
  auto refusal = third.read_response(2s);
  ASSERT_TRUE(refusal) << "no refusal past the connection cap";
  EXPECT_EQ(refusal->status, 503);
  EXPECT_NE(refusal->body.find("--max-connections"), std::string::npos) << refusal->body;
  EXPECT_EQ(refusal->headers["connection"], "close");
  // The streams are unharmed.
  for (auto& c : busy) {
    auto stream = c->read_response(10s);
    ASSERT_TRUE(stream);
    EXPECT_NE(stream->body.find("data: [DONE]"), std::string::npos);
  }
}

TEST(HostileClients, ThousandSequentialMixedRequestsKeepMemoryFlat) {
  ServerProcess server;
  const std::vector<std::string> requests = {
      get_request("/health"),
      get_request("/v1/models"),
      get_request("/metrics"),
      get_request("/nowhere"),
      post_request("/tokenize", R"({"prompt": "hello there"})"),
      post_request("/v1/completions", R"({"prompt": "hi", "max_tokens": 4})"),
      post_request("/v1/completions", R"({"prompt": "hi", "max_tokens": 4, "stream": true})"),
      post_request("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})"),
      post_request("/v1/chat/completions", R"({"messages": [)"),
      "POST /tokenize HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n{}}",
  };
  int64_t warm_kib = 0;
  std::unique_ptr<RawConnection> connection;
  for (int i = 0; i < 1000; ++i) {
    if (i == 100) warm_kib = server.rss_kib();
    // Every seventh request opens a new connection; the refusals close theirs.
    if (!connection || i % 7 == 0) connection = std::make_unique<RawConnection>(server.port());
    const std::string& request = requests[static_cast<size_t>(i) % requests.size()];
    ASSERT_TRUE(connection->send(request)) << "request " << i;
    auto response = connection->read_response(5s);
    ASSERT_TRUE(response) << "no response to request " << i << ": " << request.substr(0, 60);
    ASSERT_GT(response->status, 0);
    if (response->headers["connection"] == "close") connection.reset();
  }
  const int64_t growth_kib = server.rss_kib() - warm_kib;
  EXPECT_LT(growth_kib, 4096) << "RSS grew by " << growth_kib << " KiB over 900 requests";
}

}  // namespace
}  // namespace fp4serve::test
