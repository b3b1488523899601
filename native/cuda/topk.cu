// Top-k labels per row on the GPU, over chunks of labels.
//
// Ranking: higher score first, equal scores by smaller label; NaN ranks with
// -Infinity (and is reported as -Infinity), -0 ties with +0: the CPU
// backend's order. Each (score, label) becomes one 64-bit key that sorts in
// that order, so that all keys of a row are distinct:
//   key = ord(score) << 32 | (2^32 - 1 - label),   ord(s) = bits(s) ^ (s < 0 ? 0xFFFFFFFF : 0x80000000)
// Key 0 is "empty" (below every real key): a row with fewer than k labels
// keeps empty slots, reported as label -1, score -Infinity.
//
//   topk_merge   one block per row: the k largest keys among the row's k
//                current candidates (cand_in [B, k]) and the chunk's n scores
//                (scores [B, ld], labels label_base + c) go to cand_out [B, k],
//                unordered. Chunk scores below the smallest current candidate
//                are left out at once. The k-th largest key is found by radix
//                selection (up to 8 passes of 8 bits, a 256-bin histogram in
//                shared memory, warp-aggregated, over the keys that match the
//                digits chosen so far; it stops early when a bin is taken
//                whole), then every key above it and enough keys equal to it
//                are kept.
//   topk_finish  one block per row: bitonic sort (descending) of the k keys,
//                padded to a power of two, in global scratch [B, P]; decodes
//                labels (+ offset) and scores.
//
// The layer ops (topk_ops.cc) compute `chunk` labels at a time into a
// [B, chunk] scratch block and merge it, so memory is O(B (chunk + k)).
#include <cmath>

#include "common.cuh"

namespace xmc::cuda {
namespace {

using u64 = unsigned long long;
constexpr int kThreads = 512;


__device__ __forceinline__ float key_score(u64 key) {
  const uint32_t ord = static_cast<uint32_t>(key >> 32);
  const uint32_t u = (ord & 0x80000000u) ? (ord & 0x7FFFFFFFu) : ~ord;
  return __uint_as_float(u);
}

// hist[bin] += 1 for every active lane, one shared-memory atomic per distinct bin of the
// warp (__match_any_sync): scores of a row share their high bits, and plain atomics on
// the same bin serialise. All 32 lanes must call it.
__device__ __forceinline__ void histogram_add(unsigned* hist, unsigned bin, bool active) {
  const unsigned lanes = __ballot_sync(kFullMask, active);
  if (!active) return;
  const unsigned peers = __match_any_sync(lanes, bin);
  if ((threadIdx.x & 31) == static_cast<unsigned>(__ffs(peers) - 1)) atomicAdd(&hist[bin], __popc(peers));
}

__global__ __launch_bounds__(kThreads) void merge_kernel(const DeviceStatus* st, const float* scores, int64_t ld, int64_t n,
                                                         int64_t label_base, const u64* cand_in, u64* cand_out, int64_t k) {
  XMC_RETURN_IF_FAILED(st);
  const int64_t b = blockIdx.x;
  const float* row = scores + b * ld;
  const u64* ci = cand_in + b * k;
  u64* co = cand_out + b * k;
  __shared__ unsigned hist[256];
  __shared__ u64 s_prefix, s_rank, s_floor;
  __shared__ unsigned s_count;
  __shared__ int s_done;

  // floor: the smallest current candidate (0 while some slot is empty). A chunk score whose key
  // is below it cannot enter the top k (k candidates beat it), so it is left out of the selection.
  if (threadIdx.x == 0) s_floor = ~0ull, s_done = 0;
  __syncthreads();
  u64 lo = ~0ull;
  for (int64_t i = threadIdx.x; i < k; i += kThreads) lo = min(lo, ci[i]);
  for (int o = 16; o > 0; o >>= 1) lo = min(lo, __shfl_xor_sync(kFullMask, lo, o));
  if ((threadIdx.x & 31) == 0) atomicMin(&s_floor, lo);
  __syncthreads();
  const u64 floor = s_floor;

  // Item i < k: candidate i (always taken part); item k + c: chunk score c, if its key > floor.
  const int64_t total = n + k;
  auto item = [&](int64_t i, bool& present) -> u64 {
    if (i < k) {
      present = true;
      return ci[i];
    }
    const u64 key = topk_key(row[i - k], static_cast<uint32_t>(label_base + (i - k)));
    present = key > floor;
    return key;
  };

  // Radix selection of the k-th largest present key, 8 bits at a time from the top.
  u64 prefix = 0, mask = 0, rank = static_cast<u64>(k);
  u64 threshold = 0;  // with `exact`: select every present key >= threshold (exactly k of them)
  bool exact = false;
  for (int shift = 56; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += kThreads) hist[i] = 0;
    __syncthreads();
    for (int64_t base = 0; base < total; base += kThreads) {
      const int64_t i = base + threadIdx.x;
      bool present = false;
      const u64 key = i < total ? item(i, present) : 0;
      const bool counted = present && (key & mask) == prefix;
      histogram_add(hist, counted ? static_cast<unsigned>((key >> shift) & 255) : 0u, counted);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      u64 cum = 0;
      int d = 255;
      for (; d > 0; --d) {
        if (cum + hist[d] >= rank) break;
        cum += hist[d];
      }
      s_prefix = prefix | (static_cast<u64>(d) << shift);
      s_rank = rank - cum;
      s_done = cum + hist[d] == rank;  // bin d is taken whole: no need to look at lower bits
    }
    __syncthreads();
    prefix = s_prefix;
    rank = s_rank;
    mask |= 255ull << shift;
    if (s_done) {
      exact = true;
      threshold = prefix;  // prefix with the lower bits 0
      break;
    }
    __syncthreads();  // s_done is read by all before thread 0 may write it again
  }
  if (threadIdx.x == 0) s_count = 0;
  __syncthreads();
  if (exact) {
    for (int64_t i = threadIdx.x; i < total; i += kThreads) {
      bool present;
      const u64 key = item(i, present);
      if (present && key >= threshold) co[atomicAdd(&s_count, 1u)] = key;
    }
    return;
  }
  const u64 kth = prefix;  // the k-th largest key itself
  for (int64_t i = threadIdx.x; i < total; i += kThreads) {
    bool present;
    const u64 key = item(i, present);
    if (present && key > kth) co[atomicAdd(&s_count, 1u)] = key;
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < total; i += kThreads) {
    bool present;
    const u64 key = item(i, present);
    if (present && key == kth) {
      const unsigned slot = atomicAdd(&s_count, 1u);
      if (slot < k) co[slot] = key;
    }
  }
}

int64_t pow2_at_least(int64_t k) {
  int64_t p = 1;
  while (p < k) p <<= 1;
  return p;
}

__global__ __launch_bounds__(kThreads) void finish_kernel(const DeviceStatus* st, const u64* cand, int64_t k, int64_t P,
                                                          u64* scratch, int64_t offset, int32_t* labels, float* scores) {
  XMC_RETURN_IF_FAILED(st);
  const int64_t b = blockIdx.x;
  u64* s = scratch + b * P;
  const u64* c = cand + b * k;
  for (int64_t i = threadIdx.x; i < P; i += kThreads) s[i] = i < k ? c[i] : 0;
  __syncthreads();
  for (int64_t size = 2; size <= P; size <<= 1) {
    for (int64_t stride = size >> 1; stride > 0; stride >>= 1) {
      for (int64_t i = threadIdx.x; i < P / 2; i += kThreads) {
        const int64_t lo = 2 * stride * (i / stride) + (i % stride), hi = lo + stride;
        const u64 a = s[lo], z = s[hi];
        const bool descending = (lo & size) == 0;
        if (descending ? a < z : a > z) {
          s[lo] = z;
          s[hi] = a;
        }
      }
      __syncthreads();
    }
  }
  for (int64_t i = threadIdx.x; i < k; i += kThreads) {
    const u64 key = s[i];
    labels[b * k + i] = key == 0 ? -1 : static_cast<int32_t>(offset + (0xFFFFFFFFu - static_cast<uint32_t>(key)));
    scores[b * k + i] = key == 0 ? -INFINITY : key_score(key);
  }
}

}  // namespace

void topk_merge(const Launch& ctx, const float* scores, int64_t ld, int64_t n, int64_t label_base,
                const unsigned long long* cand_in, unsigned long long* cand_out, int64_t B, int64_t k) {
  if (B <= 0 || k <= 0) return;
  merge_kernel<<<(unsigned)B, kThreads, 0, ctx.stream>>>(ctx.status, scores, ld, n, label_base, cand_in, cand_out, k);
  check_launch(ctx.op, "topk merge_kernel");
}

size_t topk_finish_scratch_bytes(int64_t B, int64_t k) { return sizeof(u64) * static_cast<size_t>(B * pow2_at_least(k)); }

void topk_finish(const Launch& ctx, const unsigned long long* cand, int64_t B, int64_t k, int64_t offset,
                 int32_t* labels, float* scores, void* scratch) {
  if (B <= 0 || k <= 0) return;
  finish_kernel<<<(unsigned)B, kThreads, 0, ctx.stream>>>(ctx.status, cand, k, pow2_at_least(k),
                                                          static_cast<u64*>(scratch), offset, labels, scores);
  check_launch(ctx.op, "topk finish_kernel");
}

}  // namespace xmc::cuda
