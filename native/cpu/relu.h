// The ReLU's two rules, shared by reluForward / reluBackward (dense.cc) and the inputRelu option of
// ffiLossBackward (ffi.cc), so that the fused op gives the separate ops' results bit for bit:
//   forward   out = x < 0 ? 0 : x               (NaN stays NaN, -0 stays -0; out may be x)
//   backward  dX  = y > 0 ? dOut : 0            (y: the ReLU's output, or its input: the same test)
#pragma once
#include <cstdint>

#include "backend.h"

namespace xmc::cpu {

inline void relu_forward(ThreadPool& pool, const float* x, float* out, int64_t n) {
  pool.parallel_for(n, 1 << 15, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) out[i] = x[i] < 0.0f ? 0.0f : x[i];
  });
}

inline void relu_backward(ThreadPool& pool, const float* y, const float* dOut, float* dX, int64_t n) {
  pool.parallel_for(n, 1 << 15, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) dX[i] = y[i] > 0.0f ? dOut[i] : 0.0f;
  });
}

}  // namespace xmc::cpu
