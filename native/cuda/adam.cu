// Adam with bias correction, PyTorch semantics (torch.optim.Adam without
// weight decay or amsgrad), elementwise over any float32 parameter:
//
//   m     = beta1 m + (1 - beta1) g
//   v     = beta2 v + (1 - beta2) g^2
//   param = param - (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
//
// The coefficients (AdamCoefficients, kernels.h) are computed in double on the
// host exactly as the CPU backend does (adam_ops.cc). Layout: four flat arrays
// of n floats; each thread updates 4 consecutive elements with 16-byte loads
// when the arrays allow it (n % 4 == 0 and 16-byte aligned), one otherwise.
#include "common.cuh"

namespace xmc::cuda {
namespace {

// The CPU backend's operations one for one (native/cpu/adam.cc: its AVX2 version and its scalar loop), each
// rounded as there (explicit _rn intrinsics: the compiler may not contract or reorder them), so that the
// results are the same bit for bit. Adam is bound by memory traffic: the arithmetic costs nothing.
__device__ __forceinline__ void adam_one(float& p, float g, float& m, float& v, const AdamCoefficients& c) {
  const float mi = __fmaf_rn(c.b1, m, __fmul_rn(c.one_minus_b1, g));
  const float vi = __fmaf_rn(c.b2, v, __fmul_rn(__fmul_rn(c.one_minus_b2, g), g));
  m = mi;
  v = vi;
  p = __fsub_rn(p, __fdiv_rn(__fmul_rn(c.step_size, mi), __fmaf_rn(__fsqrt_rn(vi), c.inv_sqrt_bc2, c.eps)));
}

__global__ void adam_kernel(const DeviceStatus* st, float* p, const float* g, float* m, float* v, int64_t n,
                            AdamCoefficients c) {
  XMC_RETURN_IF_FAILED(st);
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    adam_one(p[i], g[i], m[i], v[i], c);
}

__global__ void adam4_kernel(const DeviceStatus* st, float4* p, const float4* g, float4* m, float4* v, int64_t n4,
                             AdamCoefficients c) {
  XMC_RETURN_IF_FAILED(st);
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n4; i += (int64_t)gridDim.x * blockDim.x) {
    float4 pp = p[i], mm = m[i], vv = v[i];
    const float4 gg = g[i];
    adam_one(pp.x, gg.x, mm.x, vv.x, c);
    adam_one(pp.y, gg.y, mm.y, vv.y, c);
    adam_one(pp.z, gg.z, mm.z, vv.z, c);
    adam_one(pp.w, gg.w, mm.w, vv.w, c);
    p[i] = pp;
    m[i] = mm;
    v[i] = vv;
  }
}

bool aligned16(const void* q) { return (reinterpret_cast<uintptr_t>(q) & 15) == 0; }

}  // namespace

void adam(const Launch& ctx, float* p, const float* g, float* m, float* v, int64_t n, const AdamCoefficients& c) {
  if (n <= 0) return;
  if (n % 4 == 0 && aligned16(p) && aligned16(g) && aligned16(m) && aligned16(v)) {
    adam4_kernel<<<grid_for(n / 4, 256, 4 * 132 * 8), 256, 0, ctx.stream>>>(
        ctx.status, reinterpret_cast<float4*>(p), reinterpret_cast<const float4*>(g), reinterpret_cast<float4*>(m),
        reinterpret_cast<float4*>(v), n / 4, c);
  } else {
    adam_kernel<<<grid_for(n, 256), 256, 0, ctx.stream>>>(ctx.status, p, g, m, v, n, c);
  }
  check_launch(ctx.op, "adam_kernel");
}

}  // namespace xmc::cuda
