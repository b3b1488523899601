// Device-side helpers shared by the CUDA kernels (included by *.cu only).
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "common/splitmix.h"
#include "kernels.h"

namespace xmc::cuda {

constexpr unsigned kFullMask = 0xFFFFFFFFu;

// Every kernel starts with this: an op that failed earlier halts the ops after it.
#define XMC_RETURN_IF_FAILED(status) \
  do {                               \
    if ((status)->code != 0) return; \
  } while (0)

// Records a failed check of `rank` at `position`; the smallest (rank, position) wins.
__device__ __forceinline__ void record_failure(DeviceStatus* status, uint32_t rank, unsigned long long position) {
  const unsigned long long key = (static_cast<unsigned long long>(rank) << 48) | position;
  atomicMax(&status->candidate, ~key);
}

__host__ __device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__host__ __device__ __forceinline__ int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

// splitmix64 (native/common/splitmix.h, host and device): the counter hash of dropout masks and the
// rewiring streams.
using common::mix64;
using common::SplitMix;

// The top-k ranking key of (score, label) (topk.cu explains the order): higher scores first,
// equal scores by smaller label, NaN as -Infinity, -0 as +0; 0 means "empty".
__device__ __forceinline__ unsigned long long topk_key(float s, uint32_t label) {
  if (s != s) s = -INFINITY;
  if (s == 0.0f) s = 0.0f;
  const uint32_t u = __float_as_uint(s);
  const uint32_t ord = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return (static_cast<unsigned long long>(ord) << 32) | (0xFFFFFFFFu - label);
}

// Blocks for a grid-stride loop over n elements.
inline unsigned grid_for(int64_t n, int threads, unsigned max_blocks = 8192) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks > max_blocks) blocks = max_blocks;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

}  // namespace xmc::cuda
