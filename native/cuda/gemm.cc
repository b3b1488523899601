// Matrix products of the CUDA backend: row-major C[M, N] = op(A) op(B).
//
// With cuBLAS (XMC_HAVE_CUBLAS, linked statically when the toolkit has it):
// cublasSgemm on the backend's stream, using the row-major <-> column-major
// identity C^T = op(B)^T op(A)^T, so no data moves. FP32 math by default; the
// backend option tf32 switches the handle to CUBLAS_TF32_TENSOR_OP_MATH
// (about 10 bits of mantissa in the products: relative errors near 1e-3).
// The handle's workspace comes from the backend's allocator (counted).
// Without cuBLAS: sgemm_fallback (dense.cu), plain FP32.
//
// Unlike our own kernels, cuBLAS calls do not look at the failure status:
// a product enqueued after a failing op still runs (its output is then
// overwritten even though the op is "skipped"); the promise still rejects.
#include <climits>
#include <string>

#include "backend.h"

#ifdef XMC_HAVE_CUBLAS
#include <cublas_v2.h>
#endif

namespace xmc::cuda {

#ifdef XMC_HAVE_CUBLAS
namespace {
void check_cublas(cublasStatus_t s, const char* op, const char* call) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  throw CudaFailure(std::string(op) + ": " + call + " failed: " + cublasGetStatusString(s) + " (" + cublasGetStatusName(s) + ")");
}
}  // namespace

bool have_cublas() { return true; }

void destroy_cublas(void* handle) { cublasDestroy(static_cast<cublasHandle_t>(handle)); }

void* CudaDevice::cublas(const char* op) {
  if (cublas_) return cublas_;
  cublasHandle_t h = nullptr;
  check_cublas(cublasCreate(&h), op, "cublasCreate");
  try {
    check_cublas(cublasSetStream(h, stream_), op, "cublasSetStream");
    // cuBLAS's recommended workspace: 32 MiB on Hopper, 4 MiB before.
    const size_t bytes = cc_major_ >= 9 ? (size_t(32) << 20) : (size_t(4) << 20);
    void* ws = allocator_->allocate(bytes, stream_, op);
    cublas_workspace_ = ws;
    cublas_workspace_bytes_ = bytes;
    check_cublas(cublasSetWorkspace(h, ws, bytes), op, "cublasSetWorkspace");
    check_cublas(cublasSetMathMode(h, tf32_ ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH), op, "cublasSetMathMode");
  } catch (...) {
    cublasDestroy(h);
    throw;
  }
  cublas_ = h;
  return cublas_;
}
#else
bool have_cublas() { return false; }
void destroy_cublas(void*) {}
void* CudaDevice::cublas(const char*) { return nullptr; }
#endif

void gemm(const OpCall& call, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
          const float* B, int64_t ldb, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  const Launch ctx = call.launch();
  if (K <= 0) {  // an empty sum: zeros
    check(cudaMemset2DAsync(C, sizeof(float) * ldc, 0, sizeof(float) * N, M, ctx.stream), ctx.op, "cudaMemset2DAsync");
    return;
  }
#ifdef XMC_HAVE_CUBLAS
  if (M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX) {
    auto h = static_cast<cublasHandle_t>(call.device().cublas(ctx.op));
    const float one = 1.0f, zero = 0.0f;
    check_cublas(cublasSgemm(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, (int)N, (int)M,
                             (int)K, &one, B, (int)ldb, A, (int)lda, &zero, C, (int)ldc),
                 ctx.op, "cublasSgemm");
    return;
  }
#endif
  sgemm_fallback(ctx, trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc);
}

}  // namespace xmc::cuda
