// Dense layers of the CUDA backend: the pieces around the matrix products.
//
//   add_bias_rows(out [B, O] (row stride ldo), bias [O])   out[b, o] += bias[o]
//   column_sums(g [B, O]) -> dB [O]                        dB[o] = sum_b g[b, o], b in order
//   sgemm_fallback                                          row-major C[M, N] = op(A) op(B)
//
// The products themselves go through gemm() (gemm.cc): cuBLAS when the addon
// is built with it (XMC_HAVE_CUBLAS), otherwise sgemm_fallback below: 64 x 64
// output tiles per block of 256 threads, each thread a 4 x 4 sub-tile, the
// operands staged through shared memory 16 columns of K at a time (transposed
// operands are read along their contiguous dimension). Plain FP32 FMAs, so
// it matches the CPU's OpenBLAS products to rounding; it is a portable
// fallback, not a fast one (no tensor cores, no double buffering).
//
// Layout: row-major throughout; lda/ldb/ldc are row strides in elements.
#include <algorithm>
#include <string>

#include "common.cuh"

namespace xmc::cuda {
namespace {

// Rows b = blockIdx.y, ... (grid-stride in y), columns across x: no index division (a 64-bit division
// per element made this kernel take twice its memory time). V = 4: float4 columns (O, ldo multiples
// of 4 and 16-byte aligned rows; O and ldo are then counted in float4).
template <class V>
__global__ void add_bias_kernel(const DeviceStatus* st, V* out, const V* bias, int64_t B, int64_t O, int64_t ldo) {
  XMC_RETURN_IF_FAILED(st);
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    V* row = out + b * ldo;
    for (int64_t o = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; o < O; o += (int64_t)gridDim.x * blockDim.x) {
      V v = row[o];
      const V c = bias[o];
      if constexpr (sizeof(V) == 16) {
        v.x += c.x, v.y += c.y, v.z += c.z, v.w += c.w;
      } else {
        v += c;
      }
      row[o] = v;
    }
  }
}

// One thread per column: coalesced across o, rows summed in order (as the CPU backend), their loads issued
// 8 at a time (one column per thread leaves few loads in flight otherwise).
__global__ void column_sums_kernel(const DeviceStatus* st, const float* g, int64_t B, int64_t O, float* dB) {
  XMC_RETURN_IF_FAILED(st);
  for (int64_t o = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; o < O; o += (int64_t)gridDim.x * blockDim.x) {
    float s = 0.0f;
    int64_t b = 0;
    for (; b + 8 <= B; b += 8) {
      float v[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = g[(b + i) * O + o];
#pragma unroll
      for (int i = 0; i < 8; ++i) s += v[i];
    }
    for (; b < B; ++b) s += g[b * O + o];
    dB[o] = s;
  }
}

constexpr int kTile = 64, kTileK = 16;

template <bool kTransA, bool kTransB>
__global__ __launch_bounds__(256) void sgemm_kernel(const DeviceStatus* st, int64_t M, int64_t N, int64_t K,
                                                    const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                                                    int64_t ldc) {
  XMC_RETURN_IF_FAILED(st);
  __shared__ float As[kTileK][kTile + 4];  // As[kk][m]
  __shared__ float Bs[kTileK][kTile + 4];  // Bs[kk][n]
  const int64_t m0 = (int64_t)blockIdx.y * kTile, n0 = (int64_t)blockIdx.x * kTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kTileK) {
    for (int i = threadIdx.x; i < kTile * kTileK; i += 256) {
      int m, kk;
      if (kTransA) { kk = i / kTile; m = i % kTile; } else { m = i / kTileK; kk = i % kTileK; }
      const int64_t gm = m0 + m, gk = k0 + kk;
      As[kk][m] = (gm < M && gk < K) ? (kTransA ? A[gk * lda + gm] : A[gm * lda + gk]) : 0.0f;
    }
    for (int i = threadIdx.x; i < kTile * kTileK; i += 256) {
      int n, kk;
      if (kTransB) { n = i / kTileK; kk = i % kTileK; } else { kk = i / kTile; n = i % kTile; }
      const int64_t gn = n0 + n, gk = k0 + kk;
      Bs[kk][n] = (gn < N && gk < K) ? (kTransB ? B[gn * ldb + gk] : B[gk * ldb + gn]) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int r = 0; r < 4; ++r) a[r] = As[kk][ty * 4 + r];
#pragma unroll
      for (int c = 0; c < 4; ++c) b[c] = Bs[kk][tx * 4 + c];
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[r][c] += a[r] * b[c];
    }
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int64_t m = m0 + ty * 4 + r;
    if (m >= M) continue;
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int64_t n = n0 + tx * 4 + c;
      if (n < N) C[m * ldc + n] = acc[r][c];
    }
  }
}

}  // namespace

void add_bias_rows(const Launch& ctx, float* out, const float* bias, int64_t B, int64_t O, int64_t ldo) {
  if (B <= 0 || O <= 0) return;
  const bool vec4 = O % 4 == 0 && ldo % 4 == 0 && (reinterpret_cast<uintptr_t>(out) & 15) == 0 &&
                    (reinterpret_cast<uintptr_t>(bias) & 15) == 0;
  const int64_t columns = vec4 ? O / 4 : O;
  const dim3 grid((unsigned)std::min<int64_t>((columns + 255) / 256, 1024), (unsigned)std::min<int64_t>(B, 65535));
  if (vec4)
    add_bias_kernel<float4><<<grid, 256, 0, ctx.stream>>>(ctx.status, reinterpret_cast<float4*>(out),
                                                           reinterpret_cast<const float4*>(bias), B, O / 4, ldo / 4);
  else
    add_bias_kernel<float><<<grid, 256, 0, ctx.stream>>>(ctx.status, out, bias, B, O, ldo);
  check_launch(ctx.op, "add_bias_kernel");
}

void column_sums(const Launch& ctx, const float* g, int64_t B, int64_t O, float* dB) {
  if (O <= 0) return;
  column_sums_kernel<<<grid_for(O, 256), 256, 0, ctx.stream>>>(ctx.status, g, B, O, dB);
  check_launch(ctx.op, "column_sums_kernel");
}

void sgemm_fallback(const Launch& ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A,
                    int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  const int64_t gx = (N + kTile - 1) / kTile, gy = (M + kTile - 1) / kTile;
  if (gy > 65535 || gx > 2147483647)
    throw CudaFailure(std::string(ctx.op) + ": matrix too large for the fallback SGEMM (M > 4,194,240)");
  const dim3 grid((unsigned)gx, (unsigned)gy);
  if (!trans_a && !trans_b) sgemm_kernel<false, false><<<grid, 256, 0, ctx.stream>>>(ctx.status, M, N, K, A, lda, B, ldb, C, ldc);
  else if (!trans_a && trans_b) sgemm_kernel<false, true><<<grid, 256, 0, ctx.stream>>>(ctx.status, M, N, K, A, lda, B, ldb, C, ldc);
  else if (trans_a && !trans_b) sgemm_kernel<true, false><<<grid, 256, 0, ctx.stream>>>(ctx.status, M, N, K, A, lda, B, ldb, C, ldc);
  else sgemm_kernel<true, true><<<grid, 256, 0, ctx.stream>>>(ctx.status, M, N, K, A, lda, B, ldb, C, ldc);
  check_launch(ctx.op, "sgemm_kernel");
}

}  // namespace xmc::cuda
