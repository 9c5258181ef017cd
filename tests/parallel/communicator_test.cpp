// The in-process communicator for N = 1, 2, 3, 4, 8 ranks against sequential references
// computed here: sums must equal a left-to-right sum in rank order bit for bit, every
// time (thread timing must not matter), and the data movements must put every element
// where MPI/NCCL semantics say.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <thread>

#include "base/error.h"
#include "parallel/in_process_communicator.h"

namespace fp4serve {
namespace {

using ::testing::HasSubstr;

// Runs fn(comm) on one thread per rank.
void on_every_rank(int n, const std::function<void(Communicator&)>& fn) {
  auto group = make_in_process_group(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) threads.emplace_back([&, r] { fn(*group[size_t(r)]); });
  for (auto& t : threads) t.join();
}

// Values whose sum depends on the order of addition (large and small magnitudes mixed).
float value(int rank, size_t i) {
  const float big = (i + size_t(rank)) % 3 == 0 ? 1.0e8f : 1.0f;
  return big * (static_cast<float>((rank * 7 + int(i) * 13) % 29) - 14.0f) / 7.0f + 1e-3f * float(rank);
}

float sequential_sum(int n, size_t i) {
  float acc = value(0, i);
  for (int r = 1; r < n; ++r) acc += value(r, i);
  return acc;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

class InProcess : public ::testing::TestWithParam<int> {};

TEST_P(InProcess, AllReduceSumsInRankOrderEveryTime) {
  const int n = GetParam();
  for (size_t count : {size_t{0}, size_t{1}, size_t{3}, size_t{1000}}) {
    std::atomic<int> mismatches{0};
    on_every_rank(n, [&](Communicator& c) {
      EXPECT_EQ(c.size(), n);
      for (int round = 0; round < 20; ++round) {
        std::vector<float> data(count);
        for (size_t i = 0; i < count; ++i) data[i] = value(c.rank(), i);
        c.all_reduce_sum(data.data(), count, CommType::kF32);
        for (size_t i = 0; i < count; ++i)
          if (!same_bits(data[i], sequential_sum(n, i))) ++mismatches;
      }
    });
    EXPECT_EQ(mismatches, 0) << "count " << count;
  }
}

TEST_P(InProcess, IntegerAllReduce) {
  const int n = GetParam();
  on_every_rank(n, [&](Communicator& c) {
    std::vector<int64_t> data = {int64_t{1} << 40, c.rank(), -3};
    c.all_reduce_sum(data.data(), data.size(), CommType::kI64);
    EXPECT_EQ(data[0], int64_t(n) << 40);
    EXPECT_EQ(data[1], int64_t(n) * (n - 1) / 2);
    EXPECT_EQ(data[2], -3 * n);
    std::vector<int32_t> small = {c.rank() + 1};
    c.all_reduce_sum(small.data(), 1, CommType::kI32);
    EXPECT_EQ(small[0], n * (n + 1) / 2);
  });
}

TEST_P(InProcess, AllGatherConcatenatesInRankOrder) {
  const int n = GetParam();
  const size_t count = 5;
  on_every_rank(n, [&](Communicator& c) {
    std::vector<float> send(count), recv(count * size_t(n), -1.0f);
    for (size_t i = 0; i < count; ++i) send[i] = value(c.rank(), i);
    c.all_gather(send.data(), recv.data(), count, CommType::kF32);
    for (int p = 0; p < n; ++p)
      for (size_t i = 0; i < count; ++i) EXPECT_TRUE(same_bits(recv[size_t(p) * count + i], value(p, i)));
  });
}

TEST_P(InProcess, ReduceScatterGivesEachRankItsSlicesSum) {
  const int n = GetParam();
  const size_t count = 4;
  on_every_rank(n, [&](Communicator& c) {
    std::vector<float> send(count * size_t(n)), recv(count);
    for (size_t i = 0; i < send.size(); ++i) send[i] = value(c.rank(), i);
    c.reduce_scatter_sum(send.data(), recv.data(), count, CommType::kF32);
    for (size_t i = 0; i < count; ++i)
      EXPECT_TRUE(same_bits(recv[i], sequential_sum(n, size_t(c.rank()) * count + i))) << i;
  });
}

TEST_P(InProcess, AllToAllVDeliversVariableCounts) {
  const int n = GetParam();
  // Rank r sends (r + 2p) % 3 elements to rank p, valued 1000 r + 10 p + k.
  auto sends = [](int r, int p) { return size_t((r + 2 * p) % 3); };
  on_every_rank(n, [&](Communicator& c) {
    const int r = c.rank();
    std::vector<size_t> send_counts, send_offsets, recv_counts, recv_offsets;
    std::vector<int32_t> send, recv;
    for (int p = 0; p < n; ++p) {
      send_offsets.push_back(send.size());
      send_counts.push_back(sends(r, p));
      for (size_t k = 0; k < sends(r, p); ++k) send.push_back(1000 * r + 10 * p + int32_t(k));
    }
    size_t total = 0;
    for (int p = 0; p < n; ++p) {
      recv_offsets.push_back(total);
      recv_counts.push_back(sends(p, r));
      total += sends(p, r);
    }
    recv.assign(total, -1);
    c.all_to_all_v(send.data(), send_counts.data(), send_offsets.data(), recv.data(), recv_counts.data(),
                   recv_offsets.data(), CommType::kI32);
    for (int p = 0; p < n; ++p)
      for (size_t k = 0; k < sends(p, r); ++k) EXPECT_EQ(recv[recv_offsets[size_t(p)] + k], 1000 * p + 10 * r + int(k));
  });
}

TEST_P(InProcess, BroadcastAndBarrier) {
  const int n = GetParam();
  std::atomic<int> arrived{0};
  on_every_rank(n, [&](Communicator& c) {
    std::vector<uint8_t> data(7, uint8_t(c.rank()));
    c.broadcast(data.data(), data.size(), CommType::kU8, n - 1);
    for (uint8_t v : data) EXPECT_EQ(v, n - 1);
    ++arrived;
    c.barrier();
    EXPECT_EQ(arrived.load(), n);  // nobody passes the barrier before everyone reached it
    c.synchronize();
  });
}

INSTANTIATE_TEST_SUITE_P(Ranks, InProcess, ::testing::Values(1, 2, 3, 4, 8),
                         [](const auto& info) { return "n" + std::to_string(info.param); });

TEST(InProcessErrors, BadCallsAreRefusedClearly) {
  EXPECT_THROW(make_in_process_group(0), Error);
  on_every_rank(2, [](Communicator& c) {
    std::vector<uint8_t> bytes(4);
    try {
      c.all_reduce_sum(bytes.data(), bytes.size(), CommType::kU8);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr("cannot sum u8"));
    }
    std::vector<float> f(1);
    EXPECT_THROW(c.broadcast(f.data(), 1, CommType::kF32, 2), Error);  // root out of range, on every rank
  });
  // Rank 1 expects 2 elements from rank 0, which sends 1: rank 1 reports it, naming both.
  on_every_rank(2, [](Communicator& c) {
    const size_t zero[2] = {0, 0}, one[2] = {1, 1}, two[2] = {2, 1};
    int32_t send[2] = {1, 2}, recv[4] = {};
    const size_t* recv_counts = c.rank() == 1 ? two : one;
    try {
      c.all_to_all_v(send, one, zero, recv, recv_counts, zero, CommType::kI32);
      EXPECT_EQ(c.rank(), 0);
    } catch (const Error& e) {
      EXPECT_EQ(c.rank(), 1);
      EXPECT_THAT(e.what(), HasSubstr("rank 1 expects 2 elements from rank 0, which sends 1"));
    }
  });
}

// Rank 1 fails while the others wait in operations of the group (each a different one: an
// abort wakes a waiter whatever it waits in): it aborts, and every other rank returns with
// an error naming rank 1 and its message, within seconds; later operations refuse at once,
// and a second abort does not replace the first's cause.
TEST(InProcessErrors, AbortWakesEveryWaiterNamingTheFailingRank) {
  const int n = 4;
  auto group = make_in_process_group(n);
  std::atomic<int> woken{0};
  auto rank_work = [&](Communicator& c) {
    std::vector<float> data(8, 1.0f), gathered(8 * n);
    try {
      switch (c.rank()) {
        case 0: c.all_reduce_sum(data.data(), data.size(), CommType::kF32); break;
        case 2: c.all_gather(data.data(), gathered.data(), data.size(), CommType::kF32); break;
        default: c.barrier(); break;
      }
      ADD_FAILURE() << "rank " << c.rank() << " returned from an operation rank 1 never joined";
    } catch (const CommunicatorAborted& e) {
      EXPECT_EQ(e.failing_rank(), 1);
      EXPECT_THAT(e.what(), HasSubstr("rank 1 failed: out of memory placing layer 3"));
      ++woken;
    }
  };
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::future<void>> waiters;
  for (int r : {0, 2, 3}) waiters.push_back(std::async(std::launch::async, rank_work, std::ref(*group[size_t(r)])));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the others are waiting by now (or arrive later)
  group[1]->abort(1, "out of memory placing layer 3");
  for (auto& w : waiters) {
    if (w.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      std::fprintf(stderr, "a rank still waits 10 s after the abort\n");
      std::_Exit(1);  // its thread cannot be joined: end the test binary rather than hang the suite
    }
    w.get();
  }
  EXPECT_EQ(woken.load(), 3);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  group[0]->abort(0, "a later failure");
  float x = 0;
  try {
    group[3]->broadcast(&x, 1, CommType::kF32, 0);
    ADD_FAILURE() << "an aborted group ran an operation";
  } catch (const CommunicatorAborted& e) {
    EXPECT_EQ(e.failing_rank(), 1);
  }
}

// An abort after an operation completed leaves its results in place: it concerns later ones.
TEST(InProcessErrors, AbortAfterACompletedOperationKeepsItsResult) {
  auto group = make_in_process_group(2);
  std::vector<float> sums(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      float v = static_cast<float>(r + 1);
      group[size_t(r)]->all_reduce_sum(&v, 1, CommType::kF32);
      sums[size_t(r)] = v;
    });
  for (auto& t : threads) t.join();
  group[0]->abort(0, "failed after the sum");
  EXPECT_EQ(sums, (std::vector<float>{3.0f, 3.0f}));
  EXPECT_THROW(group[1]->barrier(), CommunicatorAborted);
}

}  // namespace
}  // namespace fp4serve
