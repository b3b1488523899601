// Elementwise ops and the transpose of the CUDA backend.
//
//   fill_u32(p, n, bits)            p[i] = bits (float, int32 and uint32 tensors alike)
//   copy_u32(src, dst, n)           dst[i] = src[i]
//   relu_forward(x, out)            out = max(x, 0), NaN stays NaN (out may be x)
//   relu_backward(out, dOut, dX)    dX = out > 0 ? dOut : 0 (dX may alias either input)
//   dropout(x, out, p, seed)        out = keep ? x / (1 - p) : 0 with
//                                   keep[i] = (mix64(seed + i * 0x9E3779B97F4A7C15) >> 40) * 2^-24 >= p,
//                                   i the flat index: the CPU backend's mask, bit for bit
//   transpose(x [rows, cols]) -> xT [cols, rows]   (32 x 32 tiles through shared memory); optionally
//                                                  with the ReLU on the way in, or a ReLU mask on the way out
//   transpose_bf16: the same, stored as bfloat16 (round to nearest even)
//   int8_row_scales(x [B, I]) -> scale [B]: s_b = max_i |x[b, i]| / 127 (0 for a zero row,
//                                   NaN when the row holds a NaN or an infinity)
//   transpose_int8(x, scale) -> xT [I, ld] bytes: xT[i, b] = clamp(rint(x[b, i] / s_b), -127, 127)
//                                   as a signed byte (0 where s_b is 0 or NaN and in the padding
//                                   columns b in [B, ld))
//
// Layout: flat arrays of n 4-byte elements; grid-stride loops, one element
// per thread and step (these ops are memory bound and rare next to the layers).
#include <string>

#include "common.cuh"
#include "common/int8_topk.h"

namespace xmc::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void fill_kernel(const DeviceStatus* st, uint32_t* p, int64_t n, uint32_t bits) {
  XMC_RETURN_IF_FAILED(st);
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) p[i] = bits;
}

__global__ void copy_kernel(const DeviceStatus* st, const uint32_t* src, uint32_t* dst, int64_t n) {
  XMC_RETURN_IF_FAILED(st);
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) dst[i] = src[i];
}

__global__ void relu_forward_kernel(const DeviceStatus* st, const float* x, float* out, int64_t n) {
  XMC_RETURN_IF_FAILED(st);
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float a = x[i];
    out[i] = a < 0.0f ? 0.0f : a;
  }
}

__global__ void relu_backward_kernel(const DeviceStatus* st, const float* y, const float* g, float* d, int64_t n) {
  XMC_RETURN_IF_FAILED(st);
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    d[i] = y[i] > 0.0f ? g[i] : 0.0f;
}

__global__ void dropout_kernel(const DeviceStatus* st, const float* x, float* out, int64_t n, float p, float scale,
                               uint64_t seed) {
  XMC_RETURN_IF_FAILED(st);
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const uint64_t h = mix64(seed + static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull);
    const float u = static_cast<float>(h >> 40) * (1.0f / 16777216.0f);
    out[i] = u >= p ? x[i] * scale : 0.0f;
  }
}

// One kTransposeTile^2 tile per block of 32 x 8 threads (row tiles beyond the grid's y
// limit loop); the +1 column avoids shared-memory bank conflicts. With 64 x 64 tiles each
// thread has 16 loads in flight instead of 4 (32 x 32): the transposes around the fused loss
// (h -> hT in bf16, dXT -> dX with the ReLU mask) ran at half the memory bandwidth with 4.
#ifndef XMC_TRANSPOSE_TILE
#define XMC_TRANSPOSE_TILE 64
#endif
constexpr int kTransposeTile = XMC_TRANSPOSE_TILE;
static_assert(kTransposeTile % 32 == 0, "XMC_TRANSPOSE_TILE must be a multiple of 32");
// Stored type of a transposed copy: float, or bfloat16 bits (rounded to nearest even; NaN stays NaN).
__device__ __forceinline__ void store_as(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_as(uint16_t* p, float v) {
  const uint32_t u = __float_as_uint(v);
  *p = (v != v) ? static_cast<uint16_t>((u >> 16) | 0x40u) : static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// kRelu: max(x, 0) is stored (relu_forward_kernel's rule); mask (xT's layout): 0 where mask <= 0 (relu_backward's).
template <class T, bool kRelu>
__global__ void transpose_kernel(const DeviceStatus* st, const float* x, int64_t rows, int64_t cols, T* xT,
                                 const float* mask) {
  XMC_RETURN_IF_FAILED(st);
  constexpr int N = kTransposeTile, kLanes = N / 32;
  __shared__ float tile[N][N + 1];
  const int64_t c0 = (int64_t)blockIdx.x * N;
  for (int64_t r0 = (int64_t)blockIdx.y * N; r0 < rows; r0 += (int64_t)gridDim.y * N) {
#pragma unroll
    for (int j = threadIdx.y; j < N; j += 8) {
#pragma unroll
      for (int i = 0; i < kLanes; ++i) {
        const int64_t r = r0 + j, c = c0 + threadIdx.x + 32 * i;
        if (r < rows && c < cols) {
          const float a = x[r * cols + c];
          tile[j][threadIdx.x + 32 * i] = kRelu && a < 0.0f ? 0.0f : a;
        }
      }
    }
    __syncthreads();
#pragma unroll
    for (int j = threadIdx.y; j < N; j += 8) {
#pragma unroll
      for (int i = 0; i < kLanes; ++i) {
        const int64_t c = c0 + j, r = r0 + threadIdx.x + 32 * i;
        if (r < rows && c < cols)
          store_as(xT + c * rows + r, mask && !(mask[c * rows + r] > 0.0f) ? 0.0f : tile[threadIdx.x + 32 * i][j]);
      }
    }
    __syncthreads();
  }
}

// One block per row b: s_b = max |x[b, :]| / 127 (NaN if any value is not finite).
__global__ void row_scales_kernel(const DeviceStatus* st, const float* x, int64_t cols, float* scale) {
  XMC_RETURN_IF_FAILED(st);
  const float* row = x + (int64_t)blockIdx.x * cols;
  AbsMax am;  // native/common/int8_topk.h, as the CPU reference
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) am.add(row[i]);
  float m = am.m;
  const bool finite = am.finite;
  __shared__ float s_max[32];
  __shared__ int s_finite[32];
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(kFullMask, m, o));
  const bool all_finite = __all_sync(kFullMask, finite);
  if ((threadIdx.x & 31) == 0) s_max[threadIdx.x / 32] = m, s_finite[threadIdx.x / 32] = all_finite;
  __syncthreads();
  if (threadIdx.x == 0) {
    float t = 0.0f;
    bool f = true;
    for (int w = 0; w < (int)(blockDim.x / 32); ++w) t = fmaxf(t, s_max[w]), f = f && s_finite[w];
    scale[blockIdx.x] = f ? t / 127.0f : __int_as_float(0x7FC00000);
  }
}

__device__ __forceinline__ uint8_t quantize_int8(float v, float s) {
  if (!(s > 0.0f)) return 0;  // a zero row, or a row with NaN / infinity (its scale is NaN)
  const float q = fminf(fmaxf(rintf(v / s), -127.0f), 127.0f);
  return static_cast<uint8_t>(static_cast<int8_t>(q));  // two's complement
}

// x [rows, cols] -> xT [cols, ld] bytes (columns rows .. ld - 1 filled with 0), 32 x 32 tiles.
__global__ void transpose_int8_kernel(const DeviceStatus* st, const float* x, const float* scale, int64_t rows,
                                      int64_t cols, int64_t ld, uint8_t* xT) {
  XMC_RETURN_IF_FAILED(st);
  __shared__ float tile[32][33];
  const int64_t c0 = (int64_t)blockIdx.x * 32;
  for (int64_t r0 = (int64_t)blockIdx.y * 32; r0 < ld; r0 += (int64_t)gridDim.y * 32) {
    for (int j = threadIdx.y; j < 32; j += 8) {
      const int64_t r = r0 + j, c = c0 + threadIdx.x;
      if (r < rows && c < cols) tile[j][threadIdx.x] = x[r * cols + c];
    }
    __syncthreads();
    for (int j = threadIdx.y; j < 32; j += 8) {
      const int64_t c = c0 + j, r = r0 + threadIdx.x;
      if (r < ld && c < cols) xT[c * ld + r] = r < rows ? quantize_int8(tile[threadIdx.x][j], scale[r]) : 0;
    }
    __syncthreads();
  }
}

}  // namespace

void int8_row_scales(const Launch& ctx, const float* x, int64_t rows, int64_t cols, float* scale) {
  if (rows <= 0) return;
  if (rows > 2147483647) throw CudaFailure(std::string(ctx.op) + ": int8_row_scales: too many rows");
  row_scales_kernel<<<(unsigned)rows, 256, 0, ctx.stream>>>(ctx.status, x, cols, scale);
  check_launch(ctx.op, "row_scales_kernel");
}

void transpose_int8(const Launch& ctx, const float* x, const float* scale, int64_t rows, int64_t cols, int64_t ld,
                    uint8_t* xT) {
  if (ld <= 0 || cols <= 0) return;
  const int64_t gx = (cols + 31) / 32, gy = (ld + 31) / 32;
  if (gx > 2147483647) throw CudaFailure(std::string(ctx.op) + ": transpose_int8: too many columns");
  transpose_int8_kernel<<<dim3((unsigned)gx, (unsigned)(gy < 65535 ? gy : 65535)), dim3(32, 8), 0, ctx.stream>>>(
      ctx.status, x, scale, rows, cols, ld, xT);
  check_launch(ctx.op, "transpose_int8_kernel");
}

void fill_u32(const Launch& ctx, uint32_t* p, int64_t n, uint32_t bits) {
  if (n <= 0) return;
  fill_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream>>>(ctx.status, p, n, bits);
  check_launch(ctx.op, "fill_kernel");
}

void copy_u32(const Launch& ctx, const uint32_t* src, uint32_t* dst, int64_t n) {
  if (n <= 0 || src == dst) return;
  copy_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream>>>(ctx.status, src, dst, n);
  check_launch(ctx.op, "copy_kernel");
}

void relu_forward(const Launch& ctx, const float* x, float* out, int64_t n) {
  if (n <= 0) return;
  relu_forward_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream>>>(ctx.status, x, out, n);
  check_launch(ctx.op, "relu_forward_kernel");
}

void relu_backward(const Launch& ctx, const float* out, const float* dOut, float* dX, int64_t n) {
  if (n <= 0) return;
  relu_backward_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream>>>(ctx.status, out, dOut, dX, n);
  check_launch(ctx.op, "relu_backward_kernel");
}

void dropout(const Launch& ctx, const float* x, float* out, int64_t n, float p, uint64_t seed) {
  if (n <= 0) return;
  const float scale = 1.0f / (1.0f - p);  // as the CPU backend computes it
  dropout_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream>>>(ctx.status, x, out, n, p, scale, seed);
  check_launch(ctx.op, "dropout_kernel");
}

template <class T>
static void transpose_to(const Launch& ctx, const float* x, int64_t rows, int64_t cols, T* xT, bool relu,
                         const float* mask) {
  if (rows <= 0 || cols <= 0) return;
  const int64_t gx = (cols + kTransposeTile - 1) / kTransposeTile, gy = (rows + kTransposeTile - 1) / kTransposeTile;
  if (gx > 2147483647) throw CudaFailure(std::string(ctx.op) + ": transpose: too many columns");
  const dim3 grid((unsigned)gx, (unsigned)(gy < 65535 ? gy : 65535)), block(32, 8);
  if (relu) transpose_kernel<T, true><<<grid, block, 0, ctx.stream>>>(ctx.status, x, rows, cols, xT, mask);
  else transpose_kernel<T, false><<<grid, block, 0, ctx.stream>>>(ctx.status, x, rows, cols, xT, mask);
  check_launch(ctx.op, "transpose_kernel");
}

void transpose(const Launch& ctx, const float* x, int64_t rows, int64_t cols, float* xT, bool relu, const float* mask) {
  transpose_to(ctx, x, rows, cols, xT, relu, mask);
}

void transpose_bf16(const Launch& ctx, const float* x, int64_t rows, int64_t cols, uint16_t* xT, bool relu) {
  transpose_to(ctx, x, rows, cols, xT, relu, nullptr);
}

}  // namespace xmc::cuda
