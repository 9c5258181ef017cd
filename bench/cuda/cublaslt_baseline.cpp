#include "cublaslt_baseline.h"

#include <cublasLt.h>
#include <dlfcn.h>

#include <string>

namespace fp4serve::cuda {

// The few entry points the baseline needs, resolved from the shared library.
struct CublasLtBaseline::Api {
  decltype(&cublasLtCreate) create = nullptr;
  decltype(&cublasLtDestroy) destroy = nullptr;
  decltype(&cublasLtMatmulDescCreate) desc_create = nullptr;
  decltype(&cublasLtMatmulDescDestroy) desc_destroy = nullptr;
  decltype(&cublasLtMatmulDescSetAttribute) desc_set = nullptr;
  decltype(&cublasLtMatrixLayoutCreate) layout_create = nullptr;
  decltype(&cublasLtMatrixLayoutDestroy) layout_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceCreate) pref_create = nullptr;
  decltype(&cublasLtMatmulPreferenceDestroy) pref_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceSetAttribute) pref_set = nullptr;
  decltype(&cublasLtMatmulAlgoGetHeuristic) heuristic = nullptr;
  decltype(&cublasLtMatmul) matmul = nullptr;
};

namespace {

template <typename Fn>
bool resolve(void* library, const char* name, Fn* out, std::string* why) {
  *out = reinterpret_cast<Fn>(dlsym(library, name));
  if (*out == nullptr && why) *why = std::string("libcublasLt has no symbol ") + name;
  return *out != nullptr;
}

}  // namespace

std::unique_ptr<CublasLtBaseline> CublasLtBaseline::open(std::string* why) {
  void* library = nullptr;
  for (const char* name : {"libcublasLt.so.13", "libcublasLt.so", "/usr/local/cuda/lib64/libcublasLt.so"}) {
    library = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (library) break;
  }
  if (library == nullptr) {
    if (why) *why = std::string("cannot open libcublasLt: ") + dlerror();
    return nullptr;
  }
  std::unique_ptr<CublasLtBaseline> b(new CublasLtBaseline());
  b->library_ = library;
  b->api_ = std::make_unique<Api>();
  Api& a = *b->api_;
  const bool ok = resolve(library, "cublasLtCreate", &a.create, why) &&
                  resolve(library, "cublasLtDestroy", &a.destroy, why) &&
                  resolve(library, "cublasLtMatmulDescCreate", &a.desc_create, why) &&
                  resolve(library, "cublasLtMatmulDescDestroy", &a.desc_destroy, why) &&
                  resolve(library, "cublasLtMatmulDescSetAttribute", &a.desc_set, why) &&
                  resolve(library, "cublasLtMatrixLayoutCreate", &a.layout_create, why) &&
                  resolve(library, "cublasLtMatrixLayoutDestroy", &a.layout_destroy, why) &&
                  resolve(library, "cublasLtMatmulPreferenceCreate", &a.pref_create, why) &&
                  resolve(library, "cublasLtMatmulPreferenceDestroy", &a.pref_destroy, why) &&
                  resolve(library, "cublasLtMatmulPreferenceSetAttribute", &a.pref_set, why) &&
                  resolve(library, "cublasLtMatmulAlgoGetHeuristic", &a.heuristic, why) &&
                  resolve(library, "cublasLtMatmul", &a.matmul, why);
  if (!ok) return nullptr;
  cublasLtHandle_t handle = nullptr;
  if (a.create(&handle) != CUBLAS_STATUS_SUCCESS) {
    if (why) *why = "cublasLtCreate failed";
    return nullptr;
  }
  b->handle_ = handle;
  b->workspace_bytes_ = size_t{64} << 20;
  if (cudaMalloc(&b->workspace_, b->workspace_bytes_) != cudaSuccess) {
    if (why) *why = "cannot allocate the cuBLASLt workspace";
    return nullptr;
  }
  return b;
}

CublasLtBaseline::~CublasLtBaseline() {
  if (workspace_) cudaFree(workspace_);
  if (handle_ && api_) api_->destroy(static_cast<cublasLtHandle_t>(handle_));
  if (library_) dlclose(library_);
}

bool CublasLtBaseline::matmul(Precision precision, int64_t m, int64_t n, int64_t k, const void* x, const void* w,
                              void* y, const float* x_scale, const float* w_scale, cudaStream_t stream,
                              std::string* why) {
  // Column-major view: C[N, M] = op(A)[N, K] * B[K, M] with A = W (K-major, transposed) and
  // B = x (K-major): the "TN" layout FP8 requires. C is y row-major [M, N].
  const Api& a = *api_;
  const bool fp8 = precision == Precision::kFP8;
  const cudaDataType_t in_type = fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  bool ok = a.desc_create(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS;
  const cublasOperation_t trans = CUBLAS_OP_T, no_trans = CUBLAS_OP_N;
  ok = ok && a.desc_set(desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans, sizeof(trans)) == CUBLAS_STATUS_SUCCESS;
  ok = ok && a.desc_set(desc, CUBLASLT_MATMUL_DESC_TRANSB, &no_trans, sizeof(no_trans)) == CUBLAS_STATUS_SUCCESS;
  if (fp8) {
    ok = ok && a.desc_set(desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &w_scale, sizeof(w_scale)) ==
                   CUBLAS_STATUS_SUCCESS;
    ok = ok && a.desc_set(desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &x_scale, sizeof(x_scale)) ==
                   CUBLAS_STATUS_SUCCESS;
  }
  ok = ok && a.layout_create(&la, in_type, k, n, k) == CUBLAS_STATUS_SUCCESS;
  ok = ok && a.layout_create(&lb, in_type, k, m, k) == CUBLAS_STATUS_SUCCESS;
  ok = ok && a.layout_create(&lc, CUDA_R_16BF, n, m, n) == CUBLAS_STATUS_SUCCESS;
  ok = ok && a.pref_create(&pref) == CUBLAS_STATUS_SUCCESS;
  ok = ok && a.pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes_,
                        sizeof(workspace_bytes_)) == CUBLAS_STATUS_SUCCESS;
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  ok = ok && a.heuristic(static_cast<cublasLtHandle_t>(handle_), desc, la, lb, lc, lc, pref, 1, &result, &found) ==
                 CUBLAS_STATUS_SUCCESS &&
       found > 0;
  if (!ok && why) *why = "cuBLASLt offers no algorithm for this shape";
  const float alpha = 1.0f, beta = 0.0f;
  if (ok) {
    const cublasStatus_t s = a.matmul(static_cast<cublasLtHandle_t>(handle_), desc, &alpha, w, la, x, lb, &beta, y,
                                      lc, y, lc, &result.algo, workspace_, workspace_bytes_, stream);
    ok = s == CUBLAS_STATUS_SUCCESS;
    if (!ok && why) *why = "cublasLtMatmul failed with status " + std::to_string(static_cast<int>(s));
  }
  if (pref) a.pref_destroy(pref);
  if (lc) a.layout_destroy(lc);
  if (lb) a.layout_destroy(lb);
  if (la) a.layout_destroy(la);
  if (desc) a.desc_destroy(desc);
  return ok;
}

}  // namespace fp4serve::cuda
