// Adam with bias correction, PyTorch semantics (torch.optim.Adam, no weight
// decay, no amsgrad), for any float32 tensor (dense, FFI and CSR weights alike):
//
//   adam(param, grad, m, v, {lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, step})
//     m     = beta1 m + (1 - beta1) g
//     v     = beta2 v + (1 - beta2) g^2
//     param = param - (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
//
// step counts from 1 (the first update). All four tensors have one shape and
// are read/written elementwise (flat index), in parallel chunks. The bias
// corrections are computed in double on the host side of the op.
#include <cmath>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "backend.h"
#include "common/adam_args.h"

namespace xmc::cpu {
namespace {

// The update of elements [0, n). one_minus_b1/b2 come from double precision
// (as PyTorch's 1 - beta computed in Python): 1 - float(0.999) would be off by
// 1.3e-5 relative.
struct AdamCoefficients {
  float b1, one_minus_b1, b2, one_minus_b2, step_size, inv_sqrt_bc2, eps;
};

static void adam_scalar(float* p, const float* g, float* m, float* v, int64_t i, int64_t n, const AdamCoefficients& c) {
  for (; i < n; ++i) {
    const float gi = g[i];
    // The AVX2 version's operations, fused multiply-adds included (GCC contracts this loop where it is
    // inlined into adam_avx2, but not elsewhere), so that every element gets the same result whichever path
    // takes it, and the CUDA backend's (adam.cu spells out the same operations).
    const float mi = std::fma(c.b1, m[i], c.one_minus_b1 * gi);
    const float vi = std::fma(c.b2, v[i], (c.one_minus_b2 * gi) * gi);
    m[i] = mi;
    v[i] = vi;
    p[i] -= (c.step_size * mi) / std::fma(std::sqrt(vi), c.inv_sqrt_bc2, c.eps);
  }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// AVX2 version, chosen at run time: the compiler cannot vectorise the scalar
// loop because std::sqrt may set errno (the build has no -fno-math-errno).
__attribute__((target("avx2,fma"))) static void adam_avx2(float* p, const float* g, float* m, float* v, int64_t n,
                                                         const AdamCoefficients& c) {
  const __m256 b1 = _mm256_set1_ps(c.b1), c1 = _mm256_set1_ps(c.one_minus_b1), b2 = _mm256_set1_ps(c.b2),
               c2 = _mm256_set1_ps(c.one_minus_b2), ss = _mm256_set1_ps(c.step_size),
               ib = _mm256_set1_ps(c.inv_sqrt_bc2), eps = _mm256_set1_ps(c.eps);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gi = _mm256_loadu_ps(g + i);
    const __m256 mi = _mm256_fmadd_ps(b1, _mm256_loadu_ps(m + i), _mm256_mul_ps(c1, gi));
    const __m256 vi = _mm256_fmadd_ps(b2, _mm256_loadu_ps(v + i), _mm256_mul_ps(_mm256_mul_ps(c2, gi), gi));
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    const __m256 denom = _mm256_fmadd_ps(_mm256_sqrt_ps(vi), ib, eps);
    _mm256_storeu_ps(p + i, _mm256_sub_ps(_mm256_loadu_ps(p + i), _mm256_div_ps(_mm256_mul_ps(ss, mi), denom)));
  }
  adam_scalar(p, g, m, v, i, n, c);
}
static const bool kHaveAvx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif

static void adam_range(float* p, const float* g, float* m, float* v, int64_t n, const AdamCoefficients& c) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (kHaveAvx2) return adam_avx2(p, g, m, v, n, c);
#endif
  adam_scalar(p, g, m, v, 0, n, c);
}

Napi::Value Adam(const Napi::CallbackInfo& info) {
  OpCall call(info, "adam");
  Tensor param = call.tensor(1, "param"), grad = call.tensor(2, "grad"), m = call.tensor(3, "m"), v = call.tensor(4, "v");
  const AdamCoefficients c =
      common::adam_arguments<AdamCoefficients>(call, param, grad, m, v, call.options(5));
  call.enqueue([pool = call.pool(), param, grad, m, v, c] {
    float* p = param.data<float>();
    const float* g = grad.data<float>();
    float* mm = m.data<float>();
    float* vv = v.data<float>();
    pool->parallel_for(param.size, 1 << 14, [&](int64_t i0, int64_t i1, int) {
      adam_range(p + i0, g + i0, mm + i0, vv + i0, i1 - i0, c);
    });
  });
  return info.Env().Undefined();
}

}  // namespace
}  // namespace xmc::cpu

namespace xmc {
void register_adam(Napi::Env env, Napi::Object exports) {
  exports.Set("adam", Napi::Function::New(env, cpu::Adam, "adam"));
}
}  // namespace xmc
