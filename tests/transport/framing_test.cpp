// Hostile request framing against a live server (loopback, fake model):
// request-smuggling patterns of Content-Length and Transfer-Encoding, chunked
// edge cases, NUL bytes, lone surrogates, oversized URLs and headers, and
// pipelining (RFC 9112: responses in request order).
#include <gtest/gtest.h>

#include <thread>

#include "raw_http.h"
#include "server_process.h"

namespace fp4serve::test {
namespace {

using namespace std::chrono_literals;

const std::string kTokenize = R"({"prompt": "hello"})";

// Sends `request` on a fresh connection and returns the one response.
RawResponse exchange(int port, const std::string& request, std::chrono::milliseconds timeout = 5s) {
  RawConnection connection(port);
  EXPECT_TRUE(connection.send(request));
  auto response = connection.read_response(timeout);
  if (!response) {
    ADD_FAILURE() << "no response within " << timeout.count() << " ms to: " << request.substr(0, 200);
    return {};
  }
  return *response;
}

std::string with_length_headers(const std::string& length_headers, const std::string& body) {
  return "POST /tokenize HTTP/1.1\r\nHost: t\r\n" + length_headers + "\r\n" + body;
}

TEST(Framing, ConflictingContentLengthsAre400AndClose) {
  ServerProcess server;
  // Two different lengths: the classic smuggling pattern (the issue's defect: accepted before).
  RawConnection connection(server.port());
  ASSERT_TRUE(connection.send(with_length_headers("Content-Length: 19\r\nContent-Length: 5\r\n", kTokenize)));
  auto response = connection.read_response(5s);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 400);
  EXPECT_NE(response->body.find("Content-Length"), std::string::npos) << response->body;
  EXPECT_EQ(response->headers["connection"], "close");
  EXPECT_TRUE(connection.closed_by_peer(3s));
}

TEST(Framing, DuplicateNegativeAndHugeContentLengthsAre400) {
  ServerProcess server;
  const std::pair<const char*, std::string> cases[] = {
      {"duplicate equal", "Content-Length: 19\r\nContent-Length: 19\r\n"},
      {"list", "Content-Length: 19, 19\r\n"},
      {"negative", "Content-Length: -19\r\n"},
      {"not a number", "Content-Length: 19x\r\n"},
      {"overflows 64 bits", "Content-Length: 99999999999999999999999999\r\n"},
      {"with Transfer-Encoding", "Content-Length: 19\r\nTransfer-Encoding: chunked\r\n"},
      {"Transfer-Encoding not ending in chunked", "Transfer-Encoding: gzip\r\n"},
  };
  for (const auto& [name, headers] : cases) {
    RawResponse response = exchange(server.port(), with_length_headers(headers, kTokenize));
    EXPECT_EQ(response.status, 400) << name << ": " << response.body;
    EXPECT_NE(response.body.find("\"error\""), std::string::npos) << name;
  }
}

TEST(Framing, ContentLengthOverTheLimitIs413BeforeTheBody) {
  ServerProcess server({.args = {"--max-body-bytes", "4096"}});
  // Declared, never sent: the answer must not wait for a terabyte.
  RawResponse response = exchange(server.port(), with_length_headers("Content-Length: 1000000000000\r\n", ""), 2s);
  EXPECT_EQ(response.status, 413);
  EXPECT_NE(response.body.find("too large"), std::string::npos) << response.body;
}

TEST(Framing, PostWithoutContentLengthIs411AtOnce) {
  ServerProcess server;
  const auto start = std::chrono::steady_clock::now();
  RawResponse response = exchange(server.port(), "POST /v1/completions HTTP/1.1\r\nHost: t\r\n\r\n", 2s);
  EXPECT_EQ(response.status, 411);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

TEST(Framing, ChunkedBodiesWithExtensionsAndTrailersAreRead) {
  ServerProcess server;
  RawResponse response = exchange(server.port(),
                                  "POST /tokenize HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "5;ext=1\r\n{\"pro\r\n"
                                  "e\r\nmpt\": \"hello\"}\r\n"
                                  "0\r\nX-Checksum: 1\r\n\r\n");
  EXPECT_EQ(response.status, 200) << response.body;
  EXPECT_NE(response.body.find("\"count\""), std::string::npos) << response.body;
}

TEST(Framing, BadChunkSizeIs400) {
  ServerProcess server;
  RawResponse response = exchange(
      server.port(), "POST /tokenize HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n");
  EXPECT_EQ(response.status, 400) << response.body;
}

TEST(Framing, ChunkedBodyOverTheLimitIs413) {
  ServerProcess server({.args = {"--max-body-bytes", "4096"}});
  std::string request = "POST /tokenize HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 8; ++i) request += "400\r\n" + std::string(1024, ' ') + "\r\n";
  request += "0\r\n\r\n";
  RawResponse response = exchange(server.port(), request);
  EXPECT_EQ(response.status, 413) << response.body;
  EXPECT_NE(response.body.find("too large"), std::string::npos) << response.body;
}

TEST(Framing, NulBytesAre400) {
  ServerProcess server;
  // After the JSON value: the parser used to stop at the NUL and accept the body.
  std::string body = kTokenize + std::string(1, '\0') + "ignored";
  RawResponse after = exchange(server.port(), post_request("/tokenize", body));
  EXPECT_EQ(after.status, 400) << after.body;
  EXPECT_NE(after.body.find("NUL byte"), std::string::npos) << after.body;
  // Inside a header field.
  RawResponse header = exchange(server.port(), std::string("GET /health HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n", 40));
  EXPECT_EQ(header.status, 400) << header.body;
}

TEST(Framing, TrailingBytesAfterTheJsonValueAre400) {
  ServerProcess server;
  RawResponse response = exchange(server.port(), post_request("/tokenize", kTokenize + " {}"));
  EXPECT_EQ(response.status, 400) << response.body;
}

TEST(Framing, LoneSurrogatesAre400) {
  ServerProcess server;
  RawResponse escaped = exchange(server.port(), post_request("/tokenize", R"({"prompt": "a\ud800b"})"));
  EXPECT_EQ(escaped.status, 400) << escaped.body;
  EXPECT_NE(escaped.body.find("surrogate"), std::string::npos) << escaped.body;
  // The same code point as raw (CESU-style) UTF-8 bytes.
  RawResponse raw = exchange(server.port(), post_request("/tokenize", "{\"prompt\": \"a\xED\xA0\x80z\"}"));
  EXPECT_EQ(raw.status, 400) << raw.body;
}

// Sends `request` from another thread (the server may answer and stop
// reading before all of it is in) and returns the response.
RawResponse exchange_large(int port, const std::string& request) {
  RawConnection connection(port);
  std::thread sender([&] { connection.send(request); });
  auto response = connection.read_response(10s);
  shutdown(connection.fd(), SHUT_RDWR);
  sender.join();
  if (!response) ADD_FAILURE() << "no response";
  return response.value_or(RawResponse{});
}

TEST(Framing, MegabyteUrlIs414AndMegabyteHeaderIs431) {
  ServerProcess server;
  RawResponse url = exchange_large(server.port(), "GET /" + std::string(1 << 20, 'a') + " HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(url.status, 414) << url.body;
  // 70,000 bytes: past the 16-bit field length of Beast's header container (a crash once).
  for (size_t size : {size_t{40'000}, size_t{70'000}, size_t{1} << 20}) {
    RawResponse header = exchange_large(
        server.port(), "GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(size, 'b') + "\r\n\r\n");
    EXPECT_EQ(header.status, 431) << size << ": " << header.body;
  }
  // The server is still there.
  EXPECT_EQ(exchange(server.port(), get_request("/health")).status, 200);
}

TEST(Framing, PipelinedGetsAreAnsweredInOrder) {
  ServerProcess server;
  RawConnection connection(server.port());
  ASSERT_TRUE(connection.send(get_request("/health") + get_request("/v1/models") + get_request("/nowhere")));
  auto first = connection.read_response(5s), second = connection.read_response(5s),
       third = connection.read_response(5s);
  ASSERT_TRUE(first && second && third) << "a pipelined request was dropped";
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(first->body, "");
  EXPECT_EQ(second->status, 200);
  EXPECT_NE(second->body.find("\"object\":\"list\""), std::string::npos) << second->body;
  EXPECT_EQ(third->status, 404);
  EXPECT_NE(third->body.find("no route for GET /nowhere"), std::string::npos) << third->body;
}

TEST(Framing, PipelinedPostsAndAStreamAreAnsweredInOrder) {
  ServerProcess server;
  RawConnection connection(server.port());
  ASSERT_TRUE(connection.send(post_request("/tokenize", R"({"prompt": "a"})") +
                              post_request("/v1/completions", R"({"prompt": "hi", "max_tokens": 3, "stream": true})") +
                              post_request("/tokenize", R"({"prompt": "abcd"})") +
                              post_request("/detokenize", R"({"tokens": [110, 111]})")));
  auto a = connection.read_response(5s), stream = connection.read_response(5s),
       abcd = connection.read_response(5s), detokenized = connection.read_response(5s);
  ASSERT_TRUE(a && stream && abcd && detokenized) << "a pipelined request was dropped";
  EXPECT_EQ(a->status, 200);
  EXPECT_EQ(stream->status, 200);
  EXPECT_EQ(stream->headers["content-type"], "text/event-stream");
  EXPECT_NE(stream->body.find("data: [DONE]"), std::string::npos) << stream->body;
  EXPECT_EQ(abcd->status, 200);
  // The byte-level stand-in tokenizer: one token a byte, so the responses are not swapped.
  auto count = [](const std::string& body) { return std::stoi(body.substr(body.find("\"count\":") + 8)); };
  EXPECT_EQ(count(abcd->body) - count(a->body), 3) << a->body << " / " << abcd->body;
  EXPECT_EQ(detokenized->status, 200);
  EXPECT_NE(detokenized->body.find("\"prompt\":\"hi\""), std::string::npos) << detokenized->body;
}

TEST(Framing, ExpectContinueGetsAnInterimResponse) {
  ServerProcess server;
  RawConnection connection(server.port());
  ASSERT_TRUE(connection.send("POST /tokenize HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: " +
                              std::to_string(kTokenize.size()) + "\r\n\r\n"));
  auto interim = connection.read_response(2s);
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(connection.send(kTokenize));
  auto response = connection.read_response(5s);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200) << response->body;
}

}  // namespace
}  // namespace fp4serve::test
