// A raw TCP client for transport tests: sends exactly the bytes a test gives
// (malformed, pipelined, dribbled) and parses the responses itself, so the
// client library cannot fix up what the test means to send.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace fp4serve::test {

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;                            // de-chunked
};

class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
    }
  }
  ~RawConnection() {
    if (fd_ >= 0) close(fd_);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // False once the server has closed or reset the connection.
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // One whole response (Content-Length or chunked body), or nullopt if none
  // completes within `timeout` or the connection ends first.
  std::optional<RawResponse> read_response(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto response = parse()) return response;
      if (!fill(end)) return std::nullopt;
    }
  }

  // True when the server closes (or resets) the connection within `timeout`;
  // bytes that arrive meanwhile are kept for read_response.
  bool closed_by_peer(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (!fill(end)) return !timed_out_;
    }
    return false;
  }

  int fd() const { return fd_; }

 private:
  // Reads what arrives before `end`; false on end of stream, error or timeout.
  bool fill(std::chrono::steady_clock::time_point end) {
    timed_out_ = false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    pollfd p{fd_, POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      timed_out_ = true;
      return false;
    }
    char buffer[65536];
    ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
    if (n <= 0) return false;
    buffer_.append(buffer, static_cast<size_t>(n));
    return true;
  }

  // Takes one complete response off the front of buffer_, if there is one.
  std::optional<RawResponse> parse() {
    size_t head_end = buffer_.find("\r\n\r\n");
    if (head_end == std::string::npos) return std::nullopt;
    RawResponse response;
    std::string_view head(buffer_.data(), head_end);
    size_t line_end = head.find("\r\n");
    std::string_view status_line = head.substr(0, line_end);
    if (status_line.size() < 12) throw std::runtime_error("bad status line: " + std::string(status_line));
    response.status = std::stoi(std::string(status_line.substr(9, 3)));
    while (line_end != std::string_view::npos) {
      size_t next = head.find("\r\n", line_end + 2);
      std::string_view line = head.substr(line_end + 2, next == std::string_view::npos ? std::string_view::npos
                                                                                         : next - line_end - 2);
      size_t colon = line.find(':');
      if (colon != std::string_view::npos) {
        std::string name(line.substr(0, colon));
        std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        response.headers[name] = std::string(value);
      }
      line_end = next;
    }
    size_t position = head_end + 4;
    if (response.headers["transfer-encoding"] == "chunked") {
      for (;;) {
        size_t size_end = buffer_.find("\r\n", position);
        if (size_end == std::string::npos) return std::nullopt;
        size_t size = std::stoul(buffer_.substr(position, size_end - position), nullptr, 16);
        if (buffer_.size() < size_end + 2 + size + 2) return std::nullopt;
        response.body.append(buffer_, size_end + 2, size);
        position = size_end + 2 + size + 2;
        if (size == 0) break;
      }
    } else {
      size_t length = response.headers.count("content-length") ? std::stoul(response.headers["content-length"]) : 0;
      if (buffer_.size() < position + length) return std::nullopt;
      response.body = buffer_.substr(position, length);
      position += length;
    }
    buffer_.erase(0, position);
    return response;
  }

  int fd_ = -1;
  std::string buffer_;
  bool timed_out_ = false;
};

// "POST path" with a body and a correct Content-Length.
inline std::string post_request(const std::string& path, const std::string& body, const std::string& extra = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n" + extra +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

inline std::string get_request(const std::string& path, const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: t\r\n" + extra + "\r\n";
}

}  // namespace fp4serve::test
