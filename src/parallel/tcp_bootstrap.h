// How the nodes of a multi-node run meet: node 0 listens on --master-addr:--master-port
// and hands every other node the same blob (NCCL's unique id), as torchrun and vLLM
// name these settings (--nnodes, --node-rank, --master-addr, --master-port). Only this
// rendezvous goes over TCP; the collectives themselves are NCCL's.
//
// Wire format (each direction, integers little-endian): the peer sends "fp4s", its
// node rank (u32) and nnodes (u32); node 0 answers with the blob's length (u64) and the
// blob. Node 0 refuses a node rank outside [1, nnodes), a rank seen twice and a peer
// that disagrees on nnodes, with an Error naming the peer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace fp4serve {

struct NodeLaunch {
  int nnodes = 1;
  int node_rank = 0;
  std::string master_addr = "127.0.0.1";  // an IPv4 address or host name
  int master_port = 29500;
  double timeout_s = 300;  // how long node 0 waits for the others, and they for node 0
};

// Node 0's side: binds (port 0 picks a free port) and listens at construction.
class BootstrapServer {
 public:
  BootstrapServer(const std::string& address, int port);
  ~BootstrapServer();
  BootstrapServer(const BootstrapServer&) = delete;
  BootstrapServer& operator=(const BootstrapServer&) = delete;

  int port() const { return port_; }
  // Serves `blob` to nnodes - 1 peers, then returns. Throws Error on a timeout or a bad peer.
  void serve(int nnodes, std::span<const std::byte> blob, double timeout_s);

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A peer's side: connects (retrying while node 0 is not up yet) and returns the blob.
std::vector<std::byte> fetch_bootstrap_blob(const std::string& address, int port, int node_rank, int nnodes,
                                            double timeout_s);

// Node 0 serves `blob` and returns it; every other node returns what node 0 served.
std::vector<std::byte> exchange_bootstrap_blob(const NodeLaunch& launch, std::span<const std::byte> blob);

}  // namespace fp4serve
