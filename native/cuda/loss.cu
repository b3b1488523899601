// Multi-label losses fused with their gradient, from sparse label lists (GPU).
//
//   targets   y[b, l] = 1 iff labelOffset + l is in row b's list
//             labelIds[labelPtr[b] .. labelPtr[b+1]) (duplicates count once,
//             ids outside [labelOffset, labelOffset + L) are ignored)
//   squared hinge  l(s, y) = max(0, 1 - (2y - 1) s)^2
//   BCE (logits)   l(s, y) = softplus(s) - y s
//   loss[0]       = sum_{b,l} l(s[b,l], y[b,l]) * inv,   inv = 1 / (B * normaliser)
//   dScores[b, l] = dl/ds(s[b,l], y[b,l]) * inv          (dScores may be scores, or null)
//
// As on the CPU: one pass over every entry with y = 0, then a correction at
// the (few) positive entries, whose scores are saved before the pass so that
// the in-place form works. Kernels, in stream order:
//   1. check_label_ptr        labelPtr[0] = 0, non-decreasing, labelPtr[B] <= nnz (ranks 1-3)
//   2. positives_kernel       one thread per label entry: its row (binary search in
//                             labelPtr), whether it is a first in-range occurrence,
//                             and the score there (saved)
//   3. negative_kernel        grid (rows, label chunks of 4096): y = 0 loss of the
//                             chunk (float per thread, double per block) and gradient
//   4. positive_fix_kernel    per positive entry: loss difference (double) and the y = 1 gradient
//   5. reduce_kernel          one block sums the partials in a fixed order: the loss
//                             is deterministic (not bitwise the CPU's: another order)
//
// Layout: scores / dScores [B, L] row-major; labelPtr [B+1], labelIds [nnz]
// (uint32, or int32 read as uint32: negative ids are out of range). Scratch:
// per-block partial sums [B, chunks] and per-entry (row, local label, saved score, delta).
#include <cmath>
#include <string>

#include "common.cuh"

namespace xmc::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kChunk = 4096;
constexpr uint32_t kNone = 0xFFFFFFFFu;

__device__ __forceinline__ float softplus(float s) { return fmaxf(s, 0.0f) + log1pf(expf(-fabsf(s))); }
__device__ __forceinline__ float sigmoid(float s) {
  const float e = expf(-fabsf(s));
  return s >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

__global__ void label_ptr_kernel(DeviceStatus* st, const uint32_t* lp, int64_t B, int64_t nids) {
  XMC_RETURN_IF_FAILED(st);
  for (int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; b <= B; b += (int64_t)gridDim.x * blockDim.x) {
    if (b == 0 && lp[0] != 0) record_failure(st, 1, 0);
    if (b < B && lp[b + 1] < lp[b]) record_failure(st, 2, static_cast<unsigned long long>(b));
    if (b == B && static_cast<int64_t>(lp[B]) > nids) record_failure(st, 3, static_cast<unsigned long long>(B));
  }
}

struct Scratch {
  double* partial;   // [B, chunks]
  double* delta;     // [nids]
  float* saved;      // [nids]
  uint32_t* row;     // [nids]
  uint32_t* local;   // [nids], kNone: not a positive of this shard (or a duplicate)
};

__global__ void positives_kernel(const DeviceStatus* st, LossArgs a, Scratch s) {
  XMC_RETURN_IF_FAILED(st);
  const uint32_t used = a.label_ptr[a.B];
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < a.nids; e += (int64_t)gridDim.x * blockDim.x) {
    s.local[e] = kNone;
    s.delta[e] = 0.0;
    if (e >= used) continue;
    // row b: labelPtr[b] <= e < labelPtr[b+1] (the last such b: empty rows share a start)
    int64_t lo = 0, hi = a.B;  // labelPtr[lo] <= e < labelPtr[hi]
    while (hi - lo > 1) {
      const int64_t mid = (lo + hi) / 2;
      if (a.label_ptr[mid] <= e) lo = mid; else hi = mid;
    }
    const uint32_t id = a.label_ids[e];
    const int64_t local = static_cast<int64_t>(id) - a.offset;
    if (local < 0 || local >= a.L) continue;
    bool first = true;
    for (int64_t q = a.label_ptr[lo]; q < e && first; ++q) first = a.label_ids[q] != id;
    if (!first) continue;
    s.row[e] = static_cast<uint32_t>(lo);
    s.local[e] = static_cast<uint32_t>(local);
    s.saved[e] = a.scores[lo * a.L + local];
  }
}

__global__ __launch_bounds__(kThreads) void negative_kernel(const DeviceStatus* st, LossArgs a, double* partial,
                                                            int64_t chunks, float scale) {
  XMC_RETURN_IF_FAILED(st);
  const int64_t b = blockIdx.x, c = blockIdx.y;
  const int64_t l0 = c * kChunk, l1 = min64(a.L, l0 + kChunk);
  const float* s = a.scores + b * a.L;
  float* d = a.d ? a.d + b * a.L : nullptr;
  float acc = 0.0f;
  // 4 loads in flight per thread before any store (d may be s: each thread reads its own
  // elements before it writes them, and no other thread touches them).
  for (int64_t l = l0 + threadIdx.x; l < l1; l += 4 * kThreads) {
    float v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) v[u] = l + u * kThreads < l1 ? s[l + u * kThreads] : 0.0f;
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int64_t i = l + u * kThreads;
      if (i >= l1) break;
      if (!a.bce) {
        const float m = fmaxf(0.0f, 1.0f + v[u]);
        acc += m * m;
        if (d) d[i] = 2.0f * m * scale;
      } else {
        acc += softplus(v[u]);
        if (d) d[i] = sigmoid(v[u]) * scale;
      }
    }
  }
  double total = warp_sum(static_cast<double>(acc));
  __shared__ double warps[kThreads / 32];
  if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32] = total;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0.0;
    for (int w = 0; w < kThreads / 32; ++w) t += warps[w];
    partial[b * chunks + c] = t;
  }
}

__global__ void positive_fix_kernel(const DeviceStatus* st, LossArgs a, Scratch s, float scale) {
  XMC_RETURN_IF_FAILED(st);
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < a.nids; e += (int64_t)gridDim.x * blockDim.x) {
    const uint32_t local = s.local[e];
    if (local == kNone) continue;
    const float v = s.saved[e];
    double delta;
    float grad;
    if (!a.bce) {
      const double m0 = fmax(0.0, 1.0 + (double)v), m1 = fmax(0.0, 1.0 - (double)v);
      delta = m1 * m1 - m0 * m0;
      grad = static_cast<float>(-2.0 * m1);
    } else {
      delta = -static_cast<double>(v);
      grad = -sigmoid(-v);
    }
    s.delta[e] = delta;
    if (a.d) a.d[(int64_t)s.row[e] * a.L + local] = grad * scale;
  }
}

__global__ __launch_bounds__(kThreads) void reduce_kernel(const DeviceStatus* st, const double* partial, int64_t np,
                                                          const double* delta, int64_t nd, double inv, float* loss) {
  XMC_RETURN_IF_FAILED(st);
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < np; i += kThreads) acc += partial[i];
  for (int64_t i = threadIdx.x; i < nd; i += kThreads) acc += delta[i];
  acc = warp_sum(acc);
  __shared__ double warps[kThreads / 32];
  if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0.0;
    for (int w = 0; w < kThreads / 32; ++w) t += warps[w];
    loss[0] = static_cast<float>(t * inv);
  }
}

__global__ void label_bitmap_kernel(const DeviceStatus* st, const uint32_t* lp, const uint32_t* ids, int64_t B,
                                    int64_t offset, int64_t L, uint32_t* bits) {
  XMC_RETURN_IF_FAILED(st);
  const int64_t used = lp[B];
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < used; e += (int64_t)gridDim.x * blockDim.x) {
    int64_t lo = 0, hi = B;  // the row of entry e: labelPtr[lo] <= e < labelPtr[hi]
    while (hi - lo > 1) {
      const int64_t mid = (lo + hi) / 2;
      if (lp[mid] <= e) lo = mid; else hi = mid;
    }
    const int64_t local = static_cast<int64_t>(ids[e]) - offset;
    if (local < 0 || local >= L) continue;
    atomicOr(bits + (local / 32) * B + lo, 1u << (local % 32));
  }
}

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

Scratch carve(void* base, int64_t B, int64_t L, int64_t nids) {
  const int64_t chunks = (L + kChunk - 1) / kChunk;
  char* p = static_cast<char*>(base);
  Scratch s;
  s.partial = reinterpret_cast<double*>(p);
  p += align256(sizeof(double) * B * chunks);
  s.delta = reinterpret_cast<double*>(p);
  p += align256(sizeof(double) * nids);
  s.saved = reinterpret_cast<float*>(p);
  p += align256(sizeof(float) * nids);
  s.row = reinterpret_cast<uint32_t*>(p);
  p += align256(sizeof(uint32_t) * nids);
  s.local = reinterpret_cast<uint32_t*>(p);
  return s;
}

}  // namespace

void check_label_ptr(const Launch& ctx, const uint32_t* label_ptr, int64_t B, int64_t nids) {
  label_ptr_kernel<<<grid_for(B + 1, kThreads), kThreads, 0, ctx.stream>>>(ctx.status, label_ptr, B, nids);
  check_launch(ctx.op, "label_ptr_kernel");
}

size_t loss_scratch_bytes(int64_t B, int64_t L, int64_t nids) {
  const int64_t chunks = (L + kChunk - 1) / kChunk;
  return align256(sizeof(double) * B * chunks) + align256(sizeof(double) * nids) + align256(sizeof(float) * nids) +
         align256(sizeof(uint32_t) * nids) + align256(sizeof(uint32_t) * nids);
}

void loss_forward(const Launch& ctx, const LossArgs& a, void* scratch) {
  const int64_t chunks = (a.L + kChunk - 1) / kChunk;
  Scratch s = carve(scratch, a.B, a.L, a.nids);
  const float scale = static_cast<float>(a.inv);
  if (a.nids > 0) {
    positives_kernel<<<grid_for(a.nids, kThreads), kThreads, 0, ctx.stream>>>(ctx.status, a, s);
    check_launch(ctx.op, "positives_kernel");
  }
  if (a.B > 0 && chunks > 0) {
    if (chunks > 65535) throw CudaFailure(std::string(ctx.op) + ": more than 268,431,360 labels are not supported");
    negative_kernel<<<dim3((unsigned)a.B, (unsigned)chunks), kThreads, 0, ctx.stream>>>(ctx.status, a, s.partial, chunks, scale);
    check_launch(ctx.op, "negative_kernel");
  }
  if (a.nids > 0) {
    positive_fix_kernel<<<grid_for(a.nids, kThreads), kThreads, 0, ctx.stream>>>(ctx.status, a, s, scale);
    check_launch(ctx.op, "positive_fix_kernel");
  }
  reduce_kernel<<<1, kThreads, 0, ctx.stream>>>(ctx.status, s.partial, a.B * chunks, s.delta, a.nids, a.inv, a.loss);
  check_launch(ctx.op, "reduce_kernel");
}

}  // namespace xmc::cuda

namespace xmc::cuda {

void label_bitmap(const Launch& ctx, const uint32_t* label_ptr, const uint32_t* label_ids, int64_t B, int64_t nids,
                  int64_t offset, int64_t L, uint32_t* bits) {
  if (B <= 0 || nids <= 0) return;
  label_bitmap_kernel<<<grid_for(nids, kThreads), kThreads, 0, ctx.stream>>>(ctx.status, label_ptr, label_ids, B, offset,
                                                                             L, bits);
  check_launch(ctx.op, "label_bitmap_kernel");
}

void loss_reduce(const Launch& ctx, const double* partial, int64_t n, double inv, float* loss) {
  reduce_kernel<<<1, kThreads, 0, ctx.stream>>>(ctx.status, partial, n, nullptr, 0, inv, loss);
  check_launch(ctx.op, "reduce_kernel");
}

}  // namespace xmc::cuda
