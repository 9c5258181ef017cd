// Host-side checks of the CUDA backend that need no GPU: input validation (errors name the
// weight, and come before any device call) and the invariants of the decode work split.
// The kernels themselves are checked on the GPU by bench/cuda/cuda_parity (a ctest when
// built with CUDA) and by the cuda_ops_*_test.cpp files here.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/tensor.h"
#include "formats/linear_weight.h"
#include "backend/cuda_probe.h"

#ifdef FP4SERVE_HAVE_CUDA
#include "backend/cuda/kernel_launchers.h"
#include "backend/cuda/linear_cuda.h"
#include "backend/cuda/moe_cuda.h"
#endif

namespace fp4serve {
namespace {

#ifdef FP4SERVE_HAVE_CUDA

LinearWeight dense_weight(WeightEncoding encoding, DType dtype, int64_t n, int64_t k, const std::string& name) {
  LinearWeight w;
  w.encoding = encoding;
  w.out_features = n;
  w.in_features = k;
  w.name = name;
  w.weight = make_owned_tensor(dtype, {n, k}, name);
  return w;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(CudaLinearUpload, RejectsF32WeightsNamingThem) {
  const LinearWeight w = dense_weight(WeightEncoding::kF32, DType::F32, 16, 128, "layers.0.ffn.gate");
  const std::string message = error_of([&] { cuda::DeviceLinear::upload(w); });
  EXPECT_NE(message.find("layers.0.ffn.gate"), std::string::npos) << message;
  EXPECT_NE(message.find("f32"), std::string::npos) << message;
}

TEST(CudaLinearUpload, RejectsInFeaturesNotMultipleOf128) {
  const LinearWeight w = dense_weight(WeightEncoding::kBF16, DType::BF16, 16, 96, "layers.1.attn.wo_a");
  const std::string message = error_of([&] { cuda::DeviceLinear::upload(w); });
  EXPECT_NE(message.find("layers.1.attn.wo_a"), std::string::npos) << message;
  EXPECT_NE(message.find("96"), std::string::npos) << message;
}

TEST(CudaLinearUpload, RejectsOutFeaturesNotMultipleOf16) {
  const LinearWeight w = dense_weight(WeightEncoding::kBF16, DType::BF16, 24, 128, "head");
  const std::string message = error_of([&] { cuda::DeviceLinear::upload(w); });
  EXPECT_NE(message.find("head"), std::string::npos) << message;
  EXPECT_NE(message.find("24"), std::string::npos) << message;
}

TEST(CudaLinearUpload, RejectsMalformedScaleShapeViaFormatsValidation) {
  LinearWeight w = dense_weight(WeightEncoding::kMXFP4, DType::U8, 16, 64, "layers.2.ffn.experts.0.w1");
  w.in_features = 128;
  w.scale = make_owned_tensor(DType::F8_E8M0, {16, 3}, "scale");  // should be [16, 4]
  const std::string message = error_of([&] { cuda::DeviceLinear::upload(w); });
  EXPECT_NE(message.find("layers.2.ffn.experts.0.w1"), std::string::npos) << message;
}

TEST(CudaMoeUpload, RejectsMismatchedExpertCounts) {
  const std::vector<LinearWeight> w1(2), w3(2), w2(1);
  const std::string message = error_of([&] { cuda::DeviceExperts::upload(w1, w3, w2); });
  EXPECT_NE(message.find("2 w1, 2 w3 and 1 w2"), std::string::npos) << message;
}

// Every split plan must cover K exactly once with whole 128-blocks, fit shared memory, and
// never launch more CTAs than row blocks x splits.
TEST(CudaSkinnyPlan, CoversKAndFitsSharedMemoryForModelShapes) {
  struct Shape {
    int64_t n, k;
  };
  const std::vector<Shape> shapes = {{1024, 4096},  {32768, 1024}, {512, 4096},    {4096, 8192},  {4096, 2048},
                                     {129280, 4096}, {1536, 7168},  {65536, 1536},  {7168, 16384}, {6144, 7168},
                                     {7168, 3072},   {256, 128},    {272, 1024},    {16, 384}};
  for (const cuda::WeightKind kind : {cuda::WeightKind::kBF16, cuda::WeightKind::kFP8Block,
                                      cuda::WeightKind::kMXFP4, cuda::WeightKind::kNVFP4}) {
    for (const Shape& s : shapes) {
      for (const int64_t m : {1, 8, 9, 16}) {
        const cuda::SkinnyPlan plan = cuda::plan_skinny_dense(kind, s.n, s.k, m, 132);
        const int64_t blocks = s.k / 128;
        SCOPED_TRACE(testing::Message() << "kind " << static_cast<int>(kind) << " " << s.n << "x" << s.k << " M=" << m);
        EXPECT_GE(plan.splits, 1);
        EXPECT_LE(plan.splits, blocks);
        EXPECT_GE(static_cast<int64_t>(plan.kc_max) * plan.splits, s.k);
        EXPECT_EQ(plan.kc_max % 128, 0);
        EXPECT_EQ(plan.token_tiles, m <= 8 ? 1 : 2);
        EXPECT_EQ(plan.row_blocks, (s.n + 255) / 256);
        EXPECT_EQ(plan.grid, plan.row_blocks * plan.splits);
        EXPECT_LE(plan.smem_bytes, 113 * 1024) << "two CTAs per SM must fit";
        EXPECT_EQ(plan.partial_floats, plan.splits > 1 ? plan.grid * 16LL * 256 : 0);
      }
    }
  }
}

// A grid of one CTA too many costs a second full wave: the plan for Pro wo_b (28 row blocks)
// stays within the 264 CTA slots of a 132-SM device.
TEST(CudaSkinnyPlan, AvoidsAPartialSecondWave) {
  const cuda::SkinnyPlan plan = cuda::plan_skinny_dense(cuda::WeightKind::kFP8Block, 7168, 16384, 1, 132);
  EXPECT_LE(plan.grid, 264);
  EXPECT_GE(plan.grid, 200);
}

#else

// A build without CUDA compiles none of the GPU parity tests: say so as a skip, not a pass.
TEST(CudaBuild, GpuParityNeedsACudaBuild) { GTEST_SKIP() << "built without CUDA: the GPU parity tests are not compiled"; }

#endif

}  // namespace
}  // namespace fp4serve
