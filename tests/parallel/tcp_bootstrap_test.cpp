// The multi-node rendezvous on loopback, without GPUs: node 0 hands the same blob (the
// size of NCCL's unique id) to every other node; bad peers and silence end in errors
// that say what happened.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "base/error.h"
#include "parallel/tcp_bootstrap.h"

namespace fp4serve {
namespace {

using ::testing::HasSubstr;

std::vector<std::byte> blob_of(size_t size) {
  std::vector<std::byte> blob(size);
  for (size_t i = 0; i < size; ++i) blob[i] = std::byte((i * 37 + 11) & 0xFF);
  return blob;
}

class Loopback : public ::testing::TestWithParam<int> {};

TEST_P(Loopback, EveryNodeGetsNodeZerosBlob) {
  const int nnodes = GetParam();
  const auto blob = blob_of(128);
  BootstrapServer server("127.0.0.1", 0);
  ASSERT_GT(server.port(), 0);
  std::vector<std::vector<std::byte>> got(static_cast<size_t>(nnodes));
  std::vector<std::string> errors(static_cast<size_t>(nnodes));
  std::vector<std::thread> peers;
  for (int node = 1; node < nnodes; ++node)
    peers.emplace_back([&, node] {
      try {
        got[size_t(node)] = fetch_bootstrap_blob("127.0.0.1", server.port(), node, nnodes, 10);
      } catch (const Error& e) {
        errors[size_t(node)] = e.what();
      }
    });
  server.serve(nnodes, blob, 10);
  for (auto& p : peers) p.join();
  for (int node = 1; node < nnodes; ++node) {
    EXPECT_EQ(errors[size_t(node)], "");
    EXPECT_EQ(got[size_t(node)], blob) << "node " << node;
  }
}

INSTANTIATE_TEST_SUITE_P(Nodes, Loopback, ::testing::Values(1, 2, 3, 8),
                         [](const auto& info) { return "nnodes" + std::to_string(info.param); });

TEST(Bootstrap, ExchangeOnASingleNodeNeedsNoNetwork) {
  const auto blob = blob_of(16);
  NodeLaunch launch;
  launch.master_port = 1;  // never bound: one node has nobody to wait for
  EXPECT_EQ(exchange_bootstrap_blob(launch, blob), blob);
}

TEST(Bootstrap, ExchangeBetweenProcessesStyleLaunches) {
  // Node 0 binds --master-port itself: find a free one first.
  int port = 0;
  {
    BootstrapServer probe("127.0.0.1", 0);
    port = probe.port();
  }
  const auto blob = blob_of(128);
  std::vector<std::byte> got;
  std::thread peer([&] {
    NodeLaunch launch{2, 1, "localhost", port, 10};
    got = exchange_bootstrap_blob(launch, {});
  });
  EXPECT_EQ(exchange_bootstrap_blob(NodeLaunch{2, 0, "127.0.0.1", port, 10}, blob), blob);
  peer.join();
  EXPECT_EQ(got, blob);
}

TEST(Bootstrap, BadLaunchesAndPeersAreNamed) {
  try {
    exchange_bootstrap_blob(NodeLaunch{2, 2, "127.0.0.1", 1, 1}, {});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("--node-rank 2 is outside [0, --nnodes 2)"));
  }

  BootstrapServer server("127.0.0.1", 0);
  // A peer that believes in another world size.
  std::thread wrong([&] {
    try {
      fetch_bootstrap_blob("127.0.0.1", server.port(), 1, 3, 2);
    } catch (const Error&) {
      // node 0 closes the connection on it
    }
  });
  try {
    server.serve(2, blob_of(8), 5);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("node 1 was started with --nnodes 3, node 0 with --nnodes 2"));
  }
  wrong.join();
}

TEST(Bootstrap, SilenceTimesOut) {
  BootstrapServer server("127.0.0.1", 0);
  try {
    server.serve(3, blob_of(8), 0.2);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("timed out after 0.2 s with 0 of 2 other nodes connected"));
  }
  // A listener that never serves: the peer connects, then gives up at its deadline.
  try {
    fetch_bootstrap_blob("127.0.0.1", server.port(), 1, 2, 0.3);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("timed out waiting for node 0"));
  }
}

}  // namespace
}  // namespace fp4serve
