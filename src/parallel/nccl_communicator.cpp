#include "parallel/nccl_communicator.h"

#include <cuda_runtime.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>

#include "base/error.h"
#include "parallel/nccl_library.h"

namespace fp4serve {
namespace {

void check_nccl(ncclResult_t result, const char* what) {
  if (result != ncclSuccess) fail("NCCL {}: {}", what, nccl().get_error_string(result));
}

void check_cuda(cudaError_t result, const char* what) {
  if (result != cudaSuccess) fail("CUDA {}: {}", what, cudaGetErrorString(result));
}

ncclDataType_t nccl_type(CommType type) {
  switch (type) {
    case CommType::kF32: return ncclFloat32;
    case CommType::kI32: return ncclInt32;
    case CommType::kI64: return ncclInt64;
    case CommType::kU8: return ncclUint8;
  }
  return ncclUint8;
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(ncclComm_t comm, int device, int rank, int size) : comm_(comm), device_(device), rank_(rank), size_(size) {
    check_cuda(cudaSetDevice(device_), "cudaSetDevice");
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    check_cuda(cudaMalloc(&token_, sizeof(int32_t)), "cudaMalloc (barrier token)");
  }
  ~NcclCommunicator() override {
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    if (!aborted_.load()) nccl().comm_destroy(comm_);  // an aborted communicator is already freed
    cudaFree(token_);
    cudaStreamDestroy(stream_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool device_memory() const override { return true; }

  void all_reduce_sum(void* data, size_t count, CommType type) override {
    refuse_byte_sums(type);
    use_device();
    check_nccl(nccl().all_reduce(data, data, count, nccl_type(type), ncclSum, comm_, stream_), "all-reduce");
  }

  void all_gather(const void* send, void* recv, size_t count, CommType type) override {
    use_device();
    check_nccl(nccl().all_gather(send, recv, count, nccl_type(type), comm_, stream_), "all-gather");
  }

  void reduce_scatter_sum(const void* send, void* recv, size_t count, CommType type) override {
    refuse_byte_sums(type);
    use_device();
    check_nccl(nccl().reduce_scatter(send, recv, count, nccl_type(type), ncclSum, comm_, stream_), "reduce-scatter");
  }

  void all_to_all_v(const void* send, const size_t* send_counts, const size_t* send_offsets, void* recv,
                    const size_t* recv_counts, const size_t* recv_offsets, CommType type) override {
    use_device();
    const size_t es = comm_type_size(type);
    check_nccl(nccl().group_start(), "group start");
    for (int p = 0; p < size_; ++p) {
      if (send_counts[p])
        check_nccl(nccl().send(static_cast<const std::byte*>(send) + send_offsets[p] * es, send_counts[p], nccl_type(type),
                            p, comm_, stream_),
                   "send");
      if (recv_counts[p])
        check_nccl(nccl().recv(static_cast<std::byte*>(recv) + recv_offsets[p] * es, recv_counts[p], nccl_type(type), p,
                            comm_, stream_),
                   "recv");
    }
    check_nccl(nccl().group_end(), "all-to-all-v");
  }

  void broadcast(void* data, size_t count, CommType type, int root) override {
    if (root < 0 || root >= size_) fail("communicator broadcast: root {} is outside [0, {})", root, size_);
    use_device();
    check_nccl(nccl().broadcast(data, data, count, nccl_type(type), root, comm_, stream_), "broadcast");
  }

  void barrier() override {
    use_device();
    check_nccl(nccl().all_reduce(token_, token_, 1, ncclInt32, ncclSum, comm_, stream_), "barrier");
    synchronize();
  }

  // Polls rather than blocking in cudaStreamSynchronize, so that a wait for a peer that
  // failed ends: by abort() (a rank of this process), or by NCCL's asynchronous error (a
  // peer on another node whose communicator was aborted or whose connection dropped), on
  // which this rank aborts its own communicator too.
  void synchronize() override {
    use_device();
    for (;;) {
      const cudaError_t state = cudaStreamQuery(stream_);
      if (state == cudaSuccess) return;
      throw_if_aborted();
      if (state != cudaErrorNotReady) check_cuda(state, "stream synchronize");
      ncclResult_t async = ncclSuccess;
      check_nccl(nccl().comm_get_async_error(comm_, &async), "async error query");
      if (async != ncclSuccess && async != ncclInProgress) {
        abort(-1, fmt::format("NCCL reported {} on rank {} (a peer failed or its connection dropped)",
                              nccl().get_error_string(async), rank_));
        throw_if_aborted();
      }
      std::this_thread::yield();
    }
  }

  // ncclCommAbort is NCCL's way to end a communicator with operations in flight, from any
  // thread: the kernels waiting for peers return and the communicator's resources go.
  // failing_rank -1: the failure was seen by NCCL, not reported by a rank.
  void abort(int failing_rank, std::string_view message) override {
    {
      std::lock_guard<std::mutex> lock(abort_mutex_);
      if (aborted_.load()) return;
      failing_rank_ = failing_rank;
      failing_message_ = std::string(message);
      aborted_.store(true);
    }
    int caller_device = 0;  // the caller may be another rank's thread: its device stays current
    cudaGetDevice(&caller_device);
    cudaSetDevice(device_);
    nccl().comm_abort(comm_);
    cudaSetDevice(caller_device);
  }

 private:
  // Every operation starts here: none is enqueued on an aborted communicator.
  void use_device() const {
    throw_if_aborted();
    check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  }
  void throw_if_aborted() const {
    if (!aborted_.load()) return;
    std::lock_guard<std::mutex> lock(abort_mutex_);
    throw CommunicatorAborted(failing_rank_, failing_message_);
  }
  static void refuse_byte_sums(CommType type) {
    if (type == CommType::kU8) fail("communicator: cannot sum {} elements (bytes are moved, never summed)", comm_type_name(type));
  }

  ncclComm_t comm_;
  int device_;
  int rank_, size_;
  cudaStream_t stream_ = nullptr;
  void* token_ = nullptr;
  std::atomic<bool> aborted_{false};
  mutable std::mutex abort_mutex_;  // guards the two fields below, written once by abort()
  int failing_rank_ = -1;
  std::string failing_message_;
};

}  // namespace

int visible_cuda_devices() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
}

std::vector<std::unique_ptr<Communicator>> make_nccl_group(const std::vector<int>& devices, const NodeLaunch& launch) {
  if (devices.empty()) fail("NCCL communicator: no GPUs given");
  ncclUniqueId id{};
  if (launch.node_rank == 0) check_nccl(nccl().get_unique_id(&id), "get unique id");
  const auto blob = exchange_bootstrap_blob(
      launch, std::span<const std::byte>(reinterpret_cast<const std::byte*>(&id), sizeof(id)));
  if (blob.size() != sizeof(id))
    fail("NCCL communicator: node 0 sent a {}-byte id, expected {} (different NCCL versions?)", blob.size(), sizeof(id));
  std::memcpy(&id, blob.data(), sizeof(id));

  const int local = static_cast<int>(devices.size());
  const int world = launch.nnodes * local;
  std::vector<ncclComm_t> comms(devices.size());
  check_nccl(nccl().group_start(), "group start");
  for (int i = 0; i < local; ++i) {
    check_cuda(cudaSetDevice(devices[size_t(i)]), "cudaSetDevice");
    check_nccl(nccl().comm_init_rank(&comms[size_t(i)], world, id, launch.node_rank * local + i), "init rank");
  }
  check_nccl(nccl().group_end(), "communicator init");
  std::vector<std::unique_ptr<Communicator>> out;
  for (int i = 0; i < local; ++i)
    out.push_back(std::make_unique<NcclCommunicator>(comms[size_t(i)], devices[size_t(i)], launch.node_rank * local + i,
                                                     world));
  return out;
}

}  // namespace fp4serve
