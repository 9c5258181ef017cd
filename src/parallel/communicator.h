// Collective operations between the ranks of one model: what tensor and expert
// parallelism need to put partial results back together. Two implementations:
//   in-process (in_process_communicator.h): ranks are threads of one process over host
//     memory; the CPU backend and the tests use it.
//   NCCL (nccl_communicator.h, built when CUDA and NCCL are found): one thread per GPU
//     in one process per node; nodes find each other through tcp_bootstrap.h.
//
// Every rank calls the same operations in the same order with matching counts (as with
// MPI or NCCL); a mismatch is a programming error. Buffers live where the implementation
// works (host memory in-process, device memory for NCCL); NCCL enqueues on its stream
// and synchronize() waits, the in-process implementation completes before returning.
// Sums are deterministic: the in-process one adds ranks 0, 1, ..., N-1 in that order
// whatever the thread timing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace fp4serve {

enum class CommType : uint8_t { kF32, kI32, kI64, kU8 };  // kU8: bytes to move, never summed

size_t comm_type_size(CommType type);
std::string_view comm_type_name(CommType type);

// What every operation of a group throws once abort() was called on it: the rank that
// failed and its own message, so that the error the others report names the cause
// (rank -1: the transport saw the failure, no rank reported it).
class CommunicatorAborted : public Error {
 public:
  CommunicatorAborted(int failing_rank, const std::string& message);
  int failing_rank() const { return failing_rank_; }

 private:
  int failing_rank_;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Where the buffers of every operation live: device memory of this rank's GPU (NCCL),
  // or host memory (in-process).
  virtual bool device_memory() const = 0;

  // data[i] = sum over ranks of data[i], on every rank.
  virtual void all_reduce_sum(void* data, size_t count, CommType type) = 0;
  // recv = concatenation over ranks of send (count each); recv holds count * size().
  virtual void all_gather(const void* send, void* recv, size_t count, CommType type) = 0;
  // send holds count * size(); rank r receives the sum over ranks of send's r-th slice.
  virtual void reduce_scatter_sum(const void* send, void* recv, size_t count, CommType type) = 0;
  // Rank r sends send_counts[p] elements (at send_offsets[p]) to each rank p and receives
  // recv_counts[p] elements (at recv_offsets[p]) from each rank p; recv_counts[p] here
  // must equal rank p's send_counts[r]. Arrays have size() entries; offsets in elements.
  virtual void all_to_all_v(const void* send, const size_t* send_counts, const size_t* send_offsets, void* recv,
                            const size_t* recv_counts, const size_t* recv_offsets, CommType type) = 0;
  // data on every rank = data on `root`.
  virtual void broadcast(void* data, size_t count, CommType type, int root) = 0;
  // Returns once every rank has called it.
  virtual void barrier() = 0;
  // Waits for enqueued operations (a no-op where operations complete on return).
  virtual void synchronize() = 0;

  // Called by (or for) a rank that failed mid-step, so that the others stop waiting for
  // it: every rank of the group blocked in an operation, and every later operation on any
  // rank, throws CommunicatorAborted(failing_rank, message). Safe from any thread and more
  // than once (the first call's rank and message stay). The group is unusable afterwards:
  // NCCL frees its communicator (ncclCommAbort), and the in-process group cannot know
  // which operation each rank stopped in; only destruction remains.
  virtual void abort(int failing_rank, std::string_view message) = 0;
};

}  // namespace fp4serve
