// Ranks as threads of one process, over host memory. make_in_process_group(n) returns n
// communicators; rank r's must be used by one thread at a time (typically thread r).
// An operation returns once every rank has called it and the results are in place.
//
// Sums and reduce-scatters add the ranks' values in rank order 0..N-1 for every element
// (rank r sums the r-th slice of the data into a shared buffer, then every rank copies
// the result), so results are bit-identical run to run and on every rank, and equal a
// sequential left-to-right sum.
#pragma once

#include <memory>
#include <vector>

#include "parallel/communicator.h"

namespace fp4serve {

std::vector<std::unique_ptr<Communicator>> make_in_process_group(int size);

}  // namespace fp4serve
