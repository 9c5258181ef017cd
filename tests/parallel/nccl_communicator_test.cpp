// The NCCL communicator on every visible GPU of this machine (one thread per GPU, one
// node), against sequential references computed here. Values are small integers held
// in floats, so sums are exact whatever order NCCL adds them in. Skipped (and reported
// so) without NCCL in the build or with fewer than 2 GPUs.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#if FP4SERVE_HAVE_NCCL
#include <cuda_runtime.h>

#include "parallel/nccl_communicator.h"
#endif

namespace fp4serve {
namespace {

#if FP4SERVE_HAVE_NCCL

template <typename T>
T* to_device(const std::vector<T>& host) {
  void* p = nullptr;
  if (cudaMalloc(&p, std::max<size_t>(host.size(), 1) * sizeof(T)) != cudaSuccess) return nullptr;
  cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
  return static_cast<T*>(p);
}

template <typename T>
std::vector<T> to_host(const T* device, size_t count) {
  std::vector<T> out(count);
  cudaMemcpy(out.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost);
  return out;
}

TEST(Nccl, CollectivesOnEveryVisibleGpu) {
  const int n = visible_cuda_devices();
  if (n < 2) GTEST_SKIP() << "the NCCL communicator test needs 2 or more GPUs; " << n << " visible";
  std::vector<int> devices;
  for (int d = 0; d < n; ++d) devices.push_back(d);
  auto group = make_nccl_group(devices, NodeLaunch{});
  ASSERT_EQ(group.size(), size_t(n));
  auto value = [](int rank, size_t i) { return float((rank * 7 + int(i) * 3) % 11) - 5.0f; };
  const size_t count = 1000;
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      Communicator& c = *group[size_t(r)];
      cudaSetDevice(devices[size_t(r)]);
      EXPECT_EQ(c.rank(), r);
      EXPECT_EQ(c.size(), n);
      std::vector<float> mine(count);
      for (size_t i = 0; i < count; ++i) mine[i] = value(r, i);

      float* data = to_device(mine);
      c.all_reduce_sum(data, count, CommType::kF32);
      c.synchronize();
      const auto sum = to_host(data, count);
      for (size_t i = 0; i < count; ++i) {
        float expected = 0;
        for (int p = 0; p < n; ++p) expected += value(p, i);
        ASSERT_EQ(sum[i], expected) << "all-reduce element " << i;
      }

      float* gathered = to_device(std::vector<float>(count * size_t(n)));
      float* original = to_device(mine);
      c.all_gather(original, gathered, count, CommType::kF32);
      c.synchronize();
      const auto all = to_host(gathered, count * size_t(n));
      for (int p = 0; p < n; ++p)
        for (size_t i = 0; i < count; ++i) ASSERT_EQ(all[size_t(p) * count + i], value(p, i));

      const size_t slice = count / size_t(n);
      float* scattered = to_device(std::vector<float>(slice));
      c.reduce_scatter_sum(original, scattered, slice, CommType::kF32);
      c.synchronize();
      const auto part = to_host(scattered, slice);
      for (size_t i = 0; i < slice; ++i) {
        float expected = 0;
        for (int p = 0; p < n; ++p) expected += value(p, size_t(r) * slice + i);
        ASSERT_EQ(part[i], expected);
      }

      // all-to-all-v: rank r sends (r + p) % 3 + 1 elements valued 100 r + p to rank p.
      auto sends = [](int from, int to) { return size_t((from + to) % 3 + 1); };
      std::vector<size_t> sc, so, rc, ro;
      std::vector<int32_t> out;
      size_t total = 0;
      for (int p = 0; p < n; ++p) {
        so.push_back(out.size());
        sc.push_back(sends(r, p));
        out.insert(out.end(), sends(r, p), 100 * r + p);
        ro.push_back(total);
        rc.push_back(sends(p, r));
        total += sends(p, r);
      }
      int32_t* send = to_device(out);
      int32_t* recv = to_device(std::vector<int32_t>(total, -1));
      c.all_to_all_v(send, sc.data(), so.data(), recv, rc.data(), ro.data(), CommType::kI32);
      c.synchronize();
      const auto got = to_host(recv, total);
      for (int p = 0; p < n; ++p)
        for (size_t k = 0; k < rc[size_t(p)]; ++k) ASSERT_EQ(got[ro[size_t(p)] + k], 100 * p + r);

      int64_t* b = to_device(std::vector<int64_t>(3, r));
      c.broadcast(b, 3, CommType::kI64, n - 1);
      c.synchronize();
      for (int64_t v : to_host(b, 3)) ASSERT_EQ(v, n - 1);
      c.barrier();
      for (void* p : {static_cast<void*>(data), static_cast<void*>(gathered), static_cast<void*>(original),
                      static_cast<void*>(scattered), static_cast<void*>(send), static_cast<void*>(recv),
                      static_cast<void*>(b)})
        cudaFree(p);
    });
  }
  for (auto& t : threads) t.join();
  group.clear();
}

#else

TEST(Nccl, CollectivesOnEveryVisibleGpu) {
  GTEST_SKIP() << "built without NCCL (it needs a CUDA build with nccl.h and libnccl); the NCCL communicator test "
                  "runs on such a build with 2 or more GPUs";
}

#endif

}  // namespace
}  // namespace fp4serve
