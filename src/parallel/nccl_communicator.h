// The Communicator over NCCL: one process per node, one thread per GPU. Built only when
// CUDA and NCCL are found (FP4SERVE_HAVE_NCCL); buffers are device memory of the
// rank's GPU, operations are enqueued on the rank's own stream (synchronize() waits).
// Nodes agree on NCCL's unique id through tcp_bootstrap (node 0 creates it); ranks are
// numbered node_rank * gpus_per_node + local index, so every node must use the same
// number of GPUs.
#pragma once

#include <memory>
#include <vector>

#include "parallel/communicator.h"
#include "parallel/tcp_bootstrap.h"

namespace fp4serve {

// One communicator per entry of `devices` (CUDA device ordinals of this node); the
// caller hands communicator i to the thread that drives devices[i]. Throws Error with
// NCCL's or CUDA's message on failure.
std::vector<std::unique_ptr<Communicator>> make_nccl_group(const std::vector<int>& devices, const NodeLaunch& launch);

// CUDA devices visible to this process (0 when the driver or a GPU is missing).
int visible_cuda_devices();

}  // namespace fp4serve
