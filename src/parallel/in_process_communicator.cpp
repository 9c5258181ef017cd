#include "parallel/in_process_communicator.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <string>

#include "base/error.h"

namespace fp4serve {

size_t comm_type_size(CommType type) {
  switch (type) {
    case CommType::kF32: return 4;
    case CommType::kI32: return 4;
    case CommType::kI64: return 8;
    case CommType::kU8: return 1;
  }
  return 0;
}

CommunicatorAborted::CommunicatorAborted(int failing_rank, const std::string& message)
    : Error(failing_rank >= 0 ? fmt::format("communicator aborted: rank {} failed: {}", failing_rank, message)
                              : fmt::format("communicator aborted: {}", message)),
      failing_rank_(failing_rank) {}

std::string_view comm_type_name(CommType type) {
  switch (type) {
    case CommType::kF32: return "f32";
    case CommType::kI32: return "i32";
    case CommType::kI64: return "i64";
    case CommType::kU8: return "u8";
  }
  return "?";
}

namespace {

// A barrier that abort() releases: a rank waiting in it, or arriving later, throws
// CommunicatorAborted instead of waiting for a rank that will never come. A phase that
// completed before the abort still returns normally to the ranks it released. Waits on
// an atomic (C++20 wait/notify: a short spin, then the futex, as std::barrier does) whose
// top bit marks the abort, so that an abort wakes every waiter.
class AbortableBarrier {
 public:
  explicit AbortableBarrier(int n) : size_(n) {}

  void arrive_and_wait() {
    uint64_t seen = state_.load(std::memory_order_acquire);
    if (seen & kAborted) throw_aborted();
    // The phase cannot end before this rank arrives, so `seen` holds this phase's number.
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == size_) {
      arrived_.store(0, std::memory_order_relaxed);
      state_.fetch_add(1, std::memory_order_acq_rel);
      state_.notify_all();
      return;
    }
    for (;;) {
      state_.wait(seen, std::memory_order_acquire);
      const uint64_t now = state_.load(std::memory_order_acquire);
      if ((now & ~kAborted) != (seen & ~kAborted)) return;  // the phase ended
      if (now & kAborted) throw_aborted();
      seen = now;
    }
  }

  void abort(int failing_rank, std::string_view message) {
    {
      std::lock_guard<std::mutex> lock(cause_mutex_);
      if (state_.load() & kAborted) return;
      failing_rank_ = failing_rank;
      message_ = std::string(message);
      state_.fetch_or(kAborted, std::memory_order_acq_rel);
    }
    state_.notify_all();
  }

 private:
  static constexpr uint64_t kAborted = uint64_t{1} << 63;

  [[noreturn]] void throw_aborted() {
    std::lock_guard<std::mutex> lock(cause_mutex_);
    throw CommunicatorAborted(failing_rank_, message_);
  }

  const int size_;
  std::atomic<uint64_t> state_{0};  // phases completed; kAborted once aborted
  std::atomic<int> arrived_{0};
  std::mutex cause_mutex_;  // guards the cause below, written once by abort()
  int failing_rank_ = -1;
  std::string message_;
};

// What the ranks publish to one another for the operation in progress.
struct Group {
  explicit Group(int n) : size(n), sync(n), send(size_t(n)), recv(size_t(n)), counts(size_t(n)), offsets(size_t(n)),
                          partial(size_t(n)), errors(size_t(n)) {}
  int size;
  AbortableBarrier sync;
  std::vector<const std::byte*> send;
  std::vector<std::byte*> recv;
  std::vector<const size_t*> counts;   // all_to_all_v: each rank's send counts
  std::vector<const size_t*> offsets;  // all_to_all_v: each rank's send offsets
  std::vector<std::vector<std::byte>> partial;  // rank r's reduced slice
  std::vector<std::string> errors;
};

// Element range of slice r when `count` elements are cut into n nearly equal slices.
void slice(size_t count, int n, int r, size_t* begin, size_t* end) {
  *begin = count * size_t(r) / size_t(n);
  *end = count * size_t(r + 1) / size_t(n);
}

template <typename T>
void sum_in_rank_order(const std::vector<const std::byte*>& inputs, size_t first, size_t n, std::byte* out) {
  T* o = reinterpret_cast<T*>(out);
  for (size_t i = 0; i < n; ++i) {
    T acc;
    std::memcpy(&acc, inputs[0] + (first + i) * sizeof(T), sizeof(T));
    for (size_t p = 1; p < inputs.size(); ++p) {
      T v;
      std::memcpy(&v, inputs[p] + (first + i) * sizeof(T), sizeof(T));
      acc += v;
    }
    o[i] = acc;
  }
}

void sum_elements(CommType type, const std::vector<const std::byte*>& inputs, size_t first, size_t n, std::byte* out) {
  switch (type) {
    case CommType::kF32: sum_in_rank_order<float>(inputs, first, n, out); return;
    case CommType::kI32: sum_in_rank_order<int32_t>(inputs, first, n, out); return;
    case CommType::kI64: sum_in_rank_order<int64_t>(inputs, first, n, out); return;
    case CommType::kU8: break;
  }
  fail("communicator: cannot sum {} elements (bytes are moved, never summed)", comm_type_name(type));
}

class InProcessCommunicator final : public Communicator {
 public:
  InProcessCommunicator(std::shared_ptr<Group> group, int rank) : g_(std::move(group)), rank_(rank) {}

  int rank() const override { return rank_; }
  int size() const override { return g_->size; }
  bool device_memory() const override { return false; }

  void all_reduce_sum(void* data, size_t count, CommType type) override {
    if (type == CommType::kU8) sum_elements(type, {}, 0, 0, nullptr);  // throws before any rank waits
    const size_t es = comm_type_size(type);
    publish(data, data);
    size_t begin, end;
    slice(count, g_->size, rank_, &begin, &end);
    auto& mine = g_->partial[size_t(rank_)];
    mine.resize((end - begin) * es);
    sum_elements(type, g_->send, begin, end - begin, mine.data());
    g_->sync.arrive_and_wait();
    auto* out = static_cast<std::byte*>(data);
    for (int p = 0; p < g_->size; ++p) {
      size_t b, e;
      slice(count, g_->size, p, &b, &e);
      if (e > b) std::memcpy(out + b * es, g_->partial[size_t(p)].data(), (e - b) * es);
    }
    g_->sync.arrive_and_wait();
  }

  void all_gather(const void* send, void* recv, size_t count, CommType type) override {
    const size_t bytes = count * comm_type_size(type);
    publish(send, recv);
    auto* out = static_cast<std::byte*>(recv);
    for (int p = 0; p < g_->size; ++p)
      if (bytes) std::memcpy(out + size_t(p) * bytes, g_->send[size_t(p)], bytes);
    g_->sync.arrive_and_wait();
  }

  void reduce_scatter_sum(const void* send, void* recv, size_t count, CommType type) override {
    if (type == CommType::kU8) sum_elements(type, {}, 0, 0, nullptr);
    publish(send, recv);
    sum_elements(type, g_->send, size_t(rank_) * count, count, static_cast<std::byte*>(recv));
    g_->sync.arrive_and_wait();
  }

  void all_to_all_v(const void* send, const size_t* send_counts, const size_t* send_offsets, void* recv,
                    const size_t* recv_counts, const size_t* recv_offsets, CommType type) override {
    const size_t es = comm_type_size(type);
    g_->counts[size_t(rank_)] = send_counts;
    g_->offsets[size_t(rank_)] = send_offsets;
    publish(send, recv);
    std::string& error = g_->errors[size_t(rank_)];
    error.clear();
    auto* out = static_cast<std::byte*>(recv);
    for (int p = 0; p < g_->size; ++p) {
      const size_t n = g_->counts[size_t(p)][rank_];
      if (n != recv_counts[p]) {
        error = fmt::format("communicator all_to_all_v: rank {} expects {} elements from rank {}, which sends {}",
                            rank_, recv_counts[p], p, n);
        break;
      }
      if (n) std::memcpy(out + recv_offsets[p] * es, g_->send[size_t(p)] + g_->offsets[size_t(p)][rank_] * es, n * es);
    }
    g_->sync.arrive_and_wait();  // every rank has read every send buffer
    if (!error.empty()) throw Error(error);
  }

  void broadcast(void* data, size_t count, CommType type, int root) override {
    if (root < 0 || root >= g_->size) fail("communicator broadcast: root {} is outside [0, {})", root, g_->size);
    publish(data, data);
    if (rank_ != root && count) std::memcpy(data, g_->send[size_t(root)], count * comm_type_size(type));
    g_->sync.arrive_and_wait();
  }

  void barrier() override { g_->sync.arrive_and_wait(); }
  void synchronize() override {}
  void abort(int failing_rank, std::string_view message) override { g_->sync.abort(failing_rank, message); }

 private:
  // Makes this rank's buffers visible and waits until every rank's are.
  void publish(const void* send, void* recv) {
    g_->send[size_t(rank_)] = static_cast<const std::byte*>(send);
    g_->recv[size_t(rank_)] = static_cast<std::byte*>(recv);
    g_->sync.arrive_and_wait();
  }

  std::shared_ptr<Group> g_;
  int rank_;
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> make_in_process_group(int size) {
  if (size < 1) fail("in-process communicator: group size {} must be at least 1", size);
  auto group = std::make_shared<Group>(size);
  std::vector<std::unique_ptr<Communicator>> out;
  for (int r = 0; r < size; ++r) out.push_back(std::make_unique<InProcessCommunicator>(group, r));
  return out;
}

}  // namespace fp4serve
