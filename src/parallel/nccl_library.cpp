#include "parallel/nccl_library.h"

#include <dlfcn.h>

#include <string>

#include "base/error.h"

namespace fp4serve {
namespace {

NcclLibrary load() {
  // The versioned name is what the runtime packages install (Debian's libnccl2, CUDA's own copy).
  void* handle = nullptr;
  std::string errors;
  for (const char* name : {"libnccl.so.2", "libnccl.so"}) {
    handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) break;
    const char* why = dlerror();
    errors += std::string(errors.empty() ? "" : "; ") + (why ? why : name);
  }
  if (handle == nullptr)
    fail("NCCL is needed for tensor parallelism over several GPUs, and its library could not be loaded ({}): "
         "install NCCL (Debian: libnccl2) or put libnccl.so.2 on LD_LIBRARY_PATH",
         errors);
  NcclLibrary lib;
  auto find = [&](auto& fn, const char* symbol) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(handle, symbol));
    if (fn == nullptr) fail("NCCL library: no function {} in it ({})", symbol, dlerror() ? dlerror() : "not found");
  };
  find(lib.get_error_string, "ncclGetErrorString");
  find(lib.get_unique_id, "ncclGetUniqueId");
  find(lib.comm_init_rank, "ncclCommInitRank");
  find(lib.comm_destroy, "ncclCommDestroy");
  find(lib.comm_abort, "ncclCommAbort");
  find(lib.comm_get_async_error, "ncclCommGetAsyncError");
  find(lib.all_reduce, "ncclAllReduce");
  find(lib.all_gather, "ncclAllGather");
  find(lib.reduce_scatter, "ncclReduceScatter");
  find(lib.broadcast, "ncclBroadcast");
  find(lib.send, "ncclSend");
  find(lib.recv, "ncclRecv");
  find(lib.group_start, "ncclGroupStart");
  find(lib.group_end, "ncclGroupEnd");
  return lib;  // the handle stays open for the process's life
}

}  // namespace

const NcclLibrary& nccl() {
  static const NcclLibrary library = load();
  return library;
}

}  // namespace fp4serve
