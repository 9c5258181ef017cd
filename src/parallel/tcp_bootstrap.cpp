#include "parallel/tcp_bootstrap.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <thread>

#include "base/error.h"

namespace fp4serve {
namespace {

using Clock = std::chrono::steady_clock;
constexpr char kMagic[4] = {'f', 'p', '4', 's'};

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Waits for `events` on fd until the deadline; false on timeout.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) fail("bootstrap: poll failed: {}", std::strerror(errno));
  }
}

void send_all(int fd, const void* data, size_t size, Clock::time_point deadline, const std::string& peer) {
  const auto* p = static_cast<const std::byte*>(data);
  while (size > 0) {
    if (!wait_for(fd, POLLOUT, deadline)) fail("bootstrap: timed out sending to {}", peer);
    const ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("bootstrap: sending to {} failed: {}", peer, std::strerror(n < 0 ? errno : EPIPE));
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void recv_all(int fd, void* data, size_t size, Clock::time_point deadline, const std::string& peer) {
  auto* p = static_cast<std::byte*>(data);
  while (size > 0) {
    if (!wait_for(fd, POLLIN, deadline)) fail("bootstrap: timed out waiting for {}", peer);
    const ssize_t n = ::recv(fd, p, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) fail("bootstrap: {} closed the connection early", peer);
    if (n < 0) fail("bootstrap: receiving from {} failed: {}", peer, std::strerror(errno));
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void put_u32(std::byte* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<std::byte>((v >> (8 * i)) & 0xFF);
}
uint32_t get_u32(const std::byte* in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(in[i]) << (8 * i);
  return v;
}

sockaddr_in resolve(const std::string& address, int port) {
  if (port < 0 || port > 65535) fail("bootstrap: --master-port {} is outside [0, 65535]", port);
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int status = ::getaddrinfo(address.c_str(), nullptr, &hints, &found);
  if (status != 0 || found == nullptr)
    fail("bootstrap: --master-addr '{}' does not resolve: {}", address, ::gai_strerror(status));
  sockaddr_in addr = *reinterpret_cast<const sockaddr_in*>(found->ai_addr);
  ::freeaddrinfo(found);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

}  // namespace

BootstrapServer::BootstrapServer(const std::string& address, int port) {
  const sockaddr_in addr = resolve(address, port);
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) fail("bootstrap: cannot create a socket: {}", std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd_, 128) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd_);
    fd_ = -1;
    fail("bootstrap: cannot listen on {}:{}: {}", address, port, why);
  }
  sockaddr_in bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.sin_port);
}

BootstrapServer::~BootstrapServer() {
  if (fd_ >= 0) ::close(fd_);
}

void BootstrapServer::serve(int nnodes, std::span<const std::byte> blob, double timeout_s) {
  if (nnodes < 1) fail("bootstrap: --nnodes {} must be at least 1", nnodes);
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  std::set<uint32_t> seen;
  while (static_cast<int>(seen.size()) < nnodes - 1) {
    if (!wait_for(fd_, POLLIN, deadline))
      fail("bootstrap: timed out after {} s with {} of {} other nodes connected to port {}", timeout_s, seen.size(),
           nnodes - 1, port_);
    Socket peer(::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC));
    if (peer.fd() < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      fail("bootstrap: accept failed: {}", std::strerror(errno));
    }
    std::byte hello[12];
    recv_all(peer.fd(), hello, sizeof(hello), deadline, "a connecting node");
    if (std::memcmp(hello, kMagic, 4) != 0) fail("bootstrap: a peer on port {} does not speak the fp4serve bootstrap", port_);
    const uint32_t rank = get_u32(hello + 4), peer_nnodes = get_u32(hello + 8);
    const std::string name = fmt::format("node {}", rank);
    if (static_cast<int>(peer_nnodes) != nnodes)
      fail("bootstrap: {} was started with --nnodes {}, node 0 with --nnodes {}", name, peer_nnodes, nnodes);
    if (rank == 0 || static_cast<int>(rank) >= nnodes) fail("bootstrap: {} is outside [1, {})", name, nnodes);
    if (!seen.insert(rank).second) fail("bootstrap: two nodes claim --node-rank {}", rank);
    std::byte length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<std::byte>((uint64_t{blob.size()} >> (8 * i)) & 0xFF);
    send_all(peer.fd(), length, sizeof(length), deadline, name);
    send_all(peer.fd(), blob.data(), blob.size(), deadline, name);
  }
}

std::vector<std::byte> fetch_bootstrap_blob(const std::string& address, int port, int node_rank, int nnodes,
                                            double timeout_s) {
  const sockaddr_in addr = resolve(address, port);
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  const std::string master = fmt::format("node 0 at {}:{}", address, port);
  for (;;) {
    Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (s.fd() < 0) fail("bootstrap: cannot create a socket: {}", std::strerror(errno));
    if (::connect(s.fd(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
      if (remaining_ms(deadline) == 0) fail("bootstrap: {} did not answer within {} s", master, timeout_s);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // node 0 may not be listening yet
      continue;
    }
    std::byte hello[12];
    std::memcpy(hello, kMagic, 4);
    put_u32(hello + 4, static_cast<uint32_t>(node_rank));
    put_u32(hello + 8, static_cast<uint32_t>(nnodes));
    send_all(s.fd(), hello, sizeof(hello), deadline, master);
    std::byte length[8];
    recv_all(s.fd(), length, sizeof(length), deadline, master);
    uint64_t size = 0;
    for (int i = 0; i < 8; ++i) size |= uint64_t(length[i]) << (8 * i);
    if (size > (uint64_t{1} << 20)) fail("bootstrap: {} announced a {}-byte blob (at most 1 MiB)", master, size);
    std::vector<std::byte> blob(static_cast<size_t>(size));
    recv_all(s.fd(), blob.data(), blob.size(), deadline, master);
    return blob;
  }
}

std::vector<std::byte> exchange_bootstrap_blob(const NodeLaunch& launch, std::span<const std::byte> blob) {
  if (launch.nnodes < 1) fail("--nnodes {} must be at least 1", launch.nnodes);
  if (launch.node_rank < 0 || launch.node_rank >= launch.nnodes)
    fail("--node-rank {} is outside [0, --nnodes {})", launch.node_rank, launch.nnodes);
  if (launch.node_rank == 0) {
    if (launch.nnodes > 1) BootstrapServer(launch.master_addr, launch.master_port).serve(launch.nnodes, blob, launch.timeout_s);
    return {blob.begin(), blob.end()};
  }
  return fetch_bootstrap_blob(launch.master_addr, launch.master_port, launch.node_rank, launch.nnodes, launch.timeout_s);
}

}  // namespace fp4serve
