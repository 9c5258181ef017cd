// NCCL's entry points, loaded from the shared library (libnccl.so.2) the first time a
// communicator over several GPUs is made, not linked: a build with NCCL's headers runs on a
// machine without NCCL (every CPU user, one GPU) and only a multi-GPU run needs it. Built
// with the NCCL communicator (FP4SERVE_HAVE_NCCL).
#pragma once

#include <nccl.h>

namespace fp4serve {

struct NcclLibrary {
  decltype(&ncclGetErrorString) get_error_string = nullptr;
  decltype(&ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&ncclCommInitRank) comm_init_rank = nullptr;
  decltype(&ncclCommDestroy) comm_destroy = nullptr;
  decltype(&ncclCommAbort) comm_abort = nullptr;
  decltype(&ncclCommGetAsyncError) comm_get_async_error = nullptr;
  decltype(&ncclAllReduce) all_reduce = nullptr;
  decltype(&ncclAllGather) all_gather = nullptr;
  decltype(&ncclReduceScatter) reduce_scatter = nullptr;
  decltype(&ncclBroadcast) broadcast = nullptr;
  decltype(&ncclSend) send = nullptr;
  decltype(&ncclRecv) recv = nullptr;
  decltype(&ncclGroupStart) group_start = nullptr;
  decltype(&ncclGroupEnd) group_end = nullptr;
};

// The loaded library; the first call loads it. Throws Error naming the library and the
// loader's message when it is missing or lacks a function (a later call tries again).
const NcclLibrary& nccl();

}  // namespace fp4serve
