// Row-sparse output layers on the GPU: the fixed fan-in (FFI) layer and the
// unstructured CSR layer share these kernels (an FFI layer is a CSR layer
// with rowPtr[l] = l * k).
//
//   forward   out[b, l]  = bias[l] + sum_{e in row l} W[e] * x[b, src[e]]
//   backward  dB[l]      = sum_b dOut[b, l]
//             dW[e]      = sum_b dOut[b, l] * x[b, src[e]]            (e in row l)
//             dX[b, i]   = sum_{e : src[e] = i} W[e] * dOut[b, row(e)]
//
// Layout: row l's connections are e in [begin(l), end(l)) of src / W (FFI:
// [L, k] row-major; CSR: rowPtr). x arrives transposed, xT [I, B] (the launcher
// in ffi_ops.cc / sparse_ops.cc builds it in scratch), so that gathering
// source i for a run of the batch is one coalesced load; out / dOut are the
// public [B, L] (row stride ldo / L); dX is scattered into dXT [I, B] (zeroed
// scratch) and transposed afterwards.
//
// Forward: a block of 8 warps owns a tile of 32 labels. A warp takes one label
// at a time; its 32 lanes load 32 connections (W, src) at once and broadcast
// them with shuffles; for each connection every lane gathers its part of the
// batch chunk (128 rows: one float4 per lane when B % 4 == 0, else 4 strided
// floats) and accumulates. The [32 labels, 128 rows] tile goes through shared
// memory so that out is written in 128-byte rows (32 consecutive labels).
//
// Backward: the same tile of 32 labels; the block first stages the dOut tile
// transposed, g[label][row], in shared memory (coalesced 128-byte reads of
// dOut rows), then a warp per label computes dB (warp sum), and per
// connection the dot product for dW (warp sum) and the scatter into dXT with
// atomics (float4 atomics on sm_90). Batches above 128 rows are done in
// chunks of 128; dW and dB accumulate across chunks in place (one writer).
// Atomics make dX's rounding order vary between runs (not bitwise
// deterministic, unlike dW and dB).
//
// Fused loss + backward (ffiLossBackward): a warp per label at a time (a
// warp takes labels warp, warp + 4 * blocks, ... (4 = kLossWarps): rowsparse_loss_backward_blocks). Per batch
// chunk of 128 rows the warp computes its label's scores as the forward does
// (lane = 4 rows), then in registers the loss and its gradient g[b] against
// y[b, l] (a bit of the batch's label bitmap, [ceil(L/32), B] words), then
// dB and, only when some g[b] != 0, dW and the dX scatter as the backward
// does. Squared hinge has g = 0 wherever a negative's score is below -1 (most
// of them once training is under way), so the backward's gathers and atomics
// are skipped for every label with no gradient in the chunk; a label with a
// gradient in at most kSparseRows rows visits only those rows (lane j =
// connection j: one load of hT and one atomic per row) instead of gathering
// whole 128-row runs of hT per connection. A build knob (XMC_LOSS_CACHE=1,
// off by default) makes a label of at most 32 connections keep its gathered
// bf16 runs in shared memory (8.5 KiB per warp) for its backward to read
// there: it was 3% slower on a proper random model (docs/PERFORMANCE.md,
// sixth session), its 68 KiB per block taken from L1. The [B, L]
// scores never exist; per-block loss sums go to `partial` (double) and are
// reduced by loss_reduce in a fixed order. A label's first 32 connections
// (W, src) are loaded once, before its first chunk, and kept in registers for
// its scores and its backward (they were loaded twice). Cache hints
// (XMC_LOSS_HINTS, default 2): W, src, bias, dW and dB, touched once per step,
// are loaded and stored evict-first, and the gathers of hT and the atomics
// into dXT, touched again and again, are marked L2 evict-last; hT and dXT
// (48 MiB at A670K, B = 128) are nearly the whole 50 MB L2 and the 260 MB
// that stream past them per step would otherwise push them out.
//
// Checks: a source >= I is recorded (record_failure, rank rows.src_rank) and
// read as source 0 with weight 0, so a bad index never reaches memory; the
// op's finalize_checks reports it. CSR structures are checked first by
// check_csr_row_ptr (the kernels trust rowPtr once it passed).
#include <algorithm>
#include <string>

#include "common.cuh"
#include "common/int8_topk.h"

namespace xmc::cuda {
namespace {

constexpr int kTileLabels = 32;
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kChunk = 128;  // batch rows per pass
constexpr int kPad = 4;      // keeps float4 rows aligned in shared memory
// Rows of gradient up to which a label's backward visits rows one by one (scalar loads and atomics, one 32-byte
// sector each) instead of whole 128-row runs (16 sectors per connection): a build-time knob for A/B runs.
#ifndef XMC_SPARSE_ROWS
#define XMC_SPARSE_ROWS 12
#endif
constexpr int kSparseRows = XMC_SPARSE_ROWS;
// Warps per block of the fused loss kernel (XMC_LOSS_WARPS, default 4): at 96 registers a multiprocessor holds
// 5 blocks of 4 warps (20 warps) but only 2 of 8 (16 warps); the extra warps keep more gathers in flight in a
// kernel that waits on L2. Measured on an H200 (eighth session, A670K B = 128, two runs each): TF32+bf16
// 52,870 / 52,338 samples/s with 4 warps against 49,653 / 49,374 with 8; FP32 (107 registers, 4 resident blocks
// either way) unchanged. src/train/memory-limit.ts counts the per-block loss sums for at least 4 warps a block.
#ifndef XMC_LOSS_WARPS
#define XMC_LOSS_WARPS 4
#endif
constexpr int kLossWarps = XMC_LOSS_WARPS;
constexpr int kLossThreads = kLossWarps * 32;
static_assert(kLossWarps >= 4 && kLossWarps <= kWarps,
              "XMC_LOSS_WARPS must be in [4, 8]: the gather cache is sized for 8, the memory planner counts blocks for 4");
constexpr int kMaxTopK = 16;  // the fused top-k keeps at most 16 keys per thread in registers
// The fused loss kernel's per-warp cache of one label's gathered bfloat16 runs (bf16 gathers, B % 8 == 0,
// at most kCacheConnections connections): [32 connections][128 rows + 8], a row stride of 272 bytes keeps the
// 16-byte stores aligned (reads of one row across 32 connections then meet 4-way bank conflicts: few reads).
constexpr int kCacheConnections = 32;
constexpr int kCacheStride = kChunk + 8;
constexpr size_t kCacheBytesPerBlock = sizeof(uint16_t) * kWarps * kCacheConnections * kCacheStride;

__device__ __forceinline__ int64_t row_begin(const RowSparseDev& r, int64_t l) {
  return r.row_ptr ? static_cast<int64_t>(r.row_ptr[l]) : l * r.fan_in;
}
__device__ __forceinline__ int64_t row_end(const RowSparseDev& r, int64_t l) {
  return r.row_ptr ? static_cast<int64_t>(r.row_ptr[l + 1]) : (l + 1) * r.fan_in;
}

// Cache hints (a build knob for A/B runs, XMC_LOSS_HINTS): 1 = the arrays that a step reads or writes once
// (W, src, bias: 86 + 86 + 2.7 MB at A670K; dW, dB) are loaded and stored with the streaming hint
// (evict first), so that they pass through L2 without pushing out the arrays that are read again and again
// (hT, 16 MiB in bf16, and dXT, 32 MiB); 2 = also the gathers of hT and the atomics into dXT are marked
// L2 evict-last (sm_80 and later). Named for the fused loss kernel, where they were measured, but every
// kernel of this file that loads connections or gathers hT through these helpers takes them (forward,
// backward, the float top-k; the int8 top-k has loads of its own): the top-5 figures did not move.
#ifndef XMC_LOSS_HINTS
#define XMC_LOSS_HINTS 2
#endif
template <class T>
__device__ __forceinline__ T load_once(const T* p) {
  if constexpr (XMC_LOSS_HINTS >= 1) return __ldcs(p);
  return *p;
}
template <class T>
__device__ __forceinline__ void store_once(T* p, T v) {
  if constexpr (XMC_LOSS_HINTS >= 1) __stcs(p, v);
  else *p = v;
}

// Lane's connection e of a 32-wide group: weight and a safe source (weight 0, source 0 past the row's end e1;
// a source >= I is recorded and read as source 0 with weight 0).
__device__ __forceinline__ void load_connection(DeviceStatus* st, const RowSparseDev& rows, int64_t e, int64_t e1,
                                                uint32_t I, float& w, uint32_t& s) {
  w = 0.0f;
  s = 0;
  if (e < e1) {
    w = load_once(rows.weight + e);
    s = load_once(rows.src + e);
    if (s >= I) {
      record_failure(st, rows.src_rank, static_cast<unsigned long long>(e));
      w = 0.0f;
      s = 0;
    }
  }
}

// Lane's connection of the group that starts at e: the caller's first group (w0, s0: load_connection at
// e0 + lane, loaded once per label and kept in registers) when e == e0, else loaded.
__device__ __forceinline__ void group_connection(DeviceStatus* st, const RowSparseDev& rows, int64_t e, int64_t e0,
                                                 int64_t e1, uint32_t I, int lane, float w0, uint32_t s0, float& w,
                                                 uint32_t& s) {
  if (e == e0) {
    w = w0;
    s = s0;
  } else {
    load_connection(st, rows, e + lane, e1, I, w, s);
  }
}

// Loads of the transposed input: float32, or bfloat16 bits widened to float32.
__device__ __forceinline__ float load1(const float* p) { return *p; }
__device__ __forceinline__ float load1(const uint16_t* p) { return __uint_as_float(static_cast<uint32_t>(*p) << 16); }
[[maybe_unused]] __device__ __forceinline__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
// 4 bf16 (8 bytes) widened to float32.
__device__ __forceinline__ float4 widen_bf16x4(uint2 v) {
  return make_float4(__uint_as_float(v.x << 16), __uint_as_float(v.x & 0xFFFF0000u), __uint_as_float(v.y << 16),
                     __uint_as_float(v.y & 0xFFFF0000u));
}
__device__ __forceinline__ float4 load4(const uint16_t* p) {  // p is 8-byte aligned
  return widen_bf16x4(*reinterpret_cast<const uint2*>(p));
}

// Gathers from hT and atomics into dXT (global memory only): plain, or with XMC_LOSS_HINTS >= 2 on sm_80 and
// later marked L2 evict-last (a createpolicy per use; the compiler keeps one).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800 && XMC_LOSS_HINTS >= 2
#define XMC_KEEP_IN_L2 1
__device__ __forceinline__ uint64_t keep_policy() {
  uint64_t p;
  asm("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(p));
  return p;
}
#endif
__device__ __forceinline__ uint4 gather16(const void* p) {
#ifdef XMC_KEEP_IN_L2
  uint4 v;
  asm volatile("ld.global.L2::cache_hint.v4.u32 {%0, %1, %2, %3}, [%4], %5;"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p), "l"(keep_policy()));
  return v;
#else
  return *reinterpret_cast<const uint4*>(p);
#endif
}
__device__ __forceinline__ float4 gather4(const float* p) {  // the 16 bytes of gather16, as 4 floats
  const uint4 v = gather16(p);
  return make_float4(__uint_as_float(v.x), __uint_as_float(v.y), __uint_as_float(v.z), __uint_as_float(v.w));
}
__device__ __forceinline__ float4 gather4(const uint16_t* p) {
#ifdef XMC_KEEP_IN_L2
  uint2 v;
  asm volatile("ld.global.L2::cache_hint.v2.u32 {%0, %1}, [%2], %3;" : "=r"(v.x), "=r"(v.y) : "l"(p), "l"(keep_policy()));
  return widen_bf16x4(v);
#else
  return load4(p);
#endif
}
__device__ __forceinline__ float gather1(const float* p) {
#ifdef XMC_KEEP_IN_L2
  float v;
  asm volatile("ld.global.L2::cache_hint.f32 %0, [%1], %2;" : "=f"(v) : "l"(p), "l"(keep_policy()));
  return v;
#else
  return load1(p);
#endif
}
__device__ __forceinline__ float gather1(const uint16_t* p) {
#ifdef XMC_KEEP_IN_L2
  unsigned short v;
  asm volatile("ld.global.L2::cache_hint.u16 %0, [%1], %2;" : "=h"(v) : "l"(p), "l"(keep_policy()));
  return __uint_as_float(static_cast<uint32_t>(v) << 16);
#else
  return load1(p);
#endif
}
__device__ __forceinline__ void scatter_add1(float* p, float v) {
#ifdef XMC_KEEP_IN_L2
  asm volatile("red.global.add.L2::cache_hint.f32 [%0], %1, %2;" ::"l"(p), "f"(v), "l"(keep_policy()) : "memory");
#else
  atomicAdd(p, v);
#endif
}

// Connections are taken kGroup at a time, their gathers issued back to back
// before any is used: the gathers come from L2 (hT is 32 MiB at B = 128) and a
// warp with one load in flight leaves most of L2's bandwidth idle. The loads
// need no branch: a lane past the chunk (lane * 4 >= nb) reads the chunk's
// first rows and drops them, and a connection past the row's end (weight 0,
// source 0: load_connection) reads source 0 and is not added.
// Tuning knobs for experiments (CUDAFLAGS=-DXMC_GATHER_GROUP=4 on a fresh build directory):
// the group size, and a minimum of resident blocks per multiprocessor for the fused kernels
// (caps their registers; 1 = no cap).
#ifndef XMC_GATHER_GROUP
#define XMC_GATHER_GROUP 8
#endif
#ifndef XMC_BACKWARD_GROUP
#define XMC_BACKWARD_GROUP XMC_GATHER_GROUP
#endif
#ifndef XMC_FUSED_MIN_BLOCKS
#define XMC_FUSED_MIN_BLOCKS 1
#endif
#ifndef XMC_BF16_WIDE
#define XMC_BF16_WIDE 1
#endif
constexpr int kGroup = XMC_GATHER_GROUP;
constexpr int kBackwardGroup = XMC_BACKWARD_GROUP;  // label_backward's group (its loop body holds more registers)
constexpr bool kBf16Wide = XMC_BF16_WIDE != 0;
constexpr int kFusedMinBlocks = XMC_FUSED_MIN_BLOCKS;
// The fused loss kernel's own group and minimum of resident blocks (it alone, not the top-k kernels):
// knobs for A/B runs.
#ifndef XMC_LOSS_GROUP
#define XMC_LOSS_GROUP XMC_GATHER_GROUP
#endif
#ifndef XMC_LOSS_MIN_BLOCKS
#define XMC_LOSS_MIN_BLOCKS XMC_FUSED_MIN_BLOCKS
#endif
constexpr int kLossGroup = XMC_LOSS_GROUP;
constexpr int kLossMinBlocks = XMC_LOSS_MIN_BLOCKS;
#ifndef XMC_LOSS_CACHE
#define XMC_LOSS_CACHE 0
#endif
constexpr bool kUseCache = XMC_LOSS_CACHE != 0;  // the fused loss kernel's gather cache (bf16 gathers)
static_assert(kGroup >= 1 && 32 % (2 * kGroup) == 0, "XMC_GATHER_GROUP must divide 16");
static_assert(kLossGroup >= 1 && 32 % (2 * kLossGroup) == 0, "XMC_LOSS_GROUP must divide 16");
static_assert(kBackwardGroup >= 1 && 32 % kBackwardGroup == 0, "XMC_BACKWARD_GROUP must divide 32");

// The offset of this lane's rows in a chunk row of xT: float4 lanes take rows
// lane*4 .. lane*4+3; lanes past the chunk read rows 0..3 (a valid address).
__device__ __forceinline__ int vec4_offset(int lane, int nb) { return lane * 4 < nb ? lane * 4 : 0; }
// Scalar lanes take rows lane + 32 r, clamped the same way.
__device__ __forceinline__ int scalar_row(int lane, int r, int nb) { return lane + 32 * r < nb ? lane + 32 * r : 0; }

// This lane's 4 rows of one chunk row xs of xT: rows lane*4 .. lane*4+3 with one vector load (kVec4),
// else rows lane + 32 r; lanes past the chunk read valid rows that the caller drops.
template <bool kVec4, class T>
__device__ __forceinline__ float4 lane_rows(const T* xs, int lane, int nb) {
  if (kVec4) return gather4(xs + vec4_offset(lane, nb));
  return make_float4(gather1(xs + scalar_row(lane, 0, nb)), gather1(xs + scalar_row(lane, 1, nb)),
                     gather1(xs + scalar_row(lane, 2, nb)), gather1(xs + scalar_row(lane, 3, nb)));
}

// bfloat16 hT with B % 8 == 0: 16-byte gathers (8 rows) instead of 8-byte ones, half
// the load instructions for the same bytes. A half-warp covers a chunk's 128 rows,
// so the two halves take alternate connections (lane < 16: even, else odd) into 8
// accumulators each; the halves are then added (xor 16) and handed out in
// label_scores' layout (lane L: rows 4L .. 4L+3, from lane L/2).
__device__ __forceinline__ void add8_bf16(float a[8], float w, uint4 v) {
  const uint32_t q[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    a[2 * i] += w * __uint_as_float(q[i] << 16);
    a[2 * i + 1] += w * __uint_as_float(q[i] & 0xFFFF0000u);
  }
}

// With `cache` (a label of at most 32 connections, the fused loss kernel's shared memory), every gathered
// run is also stored there, cache[j * kCacheStride + row], for the label's backward to reuse.
// G: connections per half-warp whose gathers are in flight at once (kGroup; the loss kernel's kLossGroup).
template <int G = kGroup>
__device__ __forceinline__ void label_scores_bf16_wide(DeviceStatus* st, const RowSparseDev& rows, const uint16_t* xT,
                                                       int B, uint32_t I, int64_t e0, int64_t e1, int c0, int nb,
                                                       int lane, float w0, uint32_t s0, float acc[4],
                                                       uint16_t* cache = nullptr) {
  const int half = lane >> 4, hl = lane & 15;
  const int off = hl * 8 < nb ? hl * 8 : 0;  // lanes past the chunk read rows 0..7 and drop them
  float a[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  for (int64_t e = e0; e < e1; e += 32) {
    float w;
    uint32_t s;
    group_connection(st, rows, e, e0, e1, I, lane, w0, s0, w, s);
    const int n = (int)min64(32, e1 - e);
    for (int j0 = 0; j0 < n; j0 += 2 * G) {
      float wj[G];
      uint4 v[G];
#pragma unroll
      for (int u = 0; u < G; ++u) {
        const int j = j0 + 2 * u + half;  // < 32: j0 <= 32 - 2 G
        wj[u] = __shfl_sync(kFullMask, w, j);
        const uint16_t* xs = xT + (int64_t)__shfl_sync(kFullMask, s, j) * B + c0 + off;
        v[u] = gather16(xs);
      }
#pragma unroll
      for (int u = 0; u < G; ++u)
        if (j0 + 2 * u + half < n) add8_bf16(a, wj[u], v[u]);
      if (cache && hl * 8 < nb)
#pragma unroll
        for (int u = 0; u < G; ++u)
          if (j0 + 2 * u + half < n) *reinterpret_cast<uint4*>(cache + (j0 + 2 * u + half) * kCacheStride + off) = v[u];
    }
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) a[i] += __shfl_xor_sync(kFullMask, a[i], 16);
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const float lo = __shfl_sync(kFullMask, a[r], lane >> 1), hi = __shfl_sync(kFullMask, a[4 + r], lane >> 1);
    acc[r] += (lane & 1) ? hi : lo;
  }
}

// One label's scores over its connections [e0, e1) for this lane's rows of the
// batch chunk [c0, c0 + nb): acc[r] += sum_e W[e] * xT[src[e], row r] (rows
// lane*4 + r with float4 gathers, else lane + 32 r), connections added in
// order. (w0, s0): the lane's connection of the first group (group_connection).
// Every lane of the warp calls it; lanes past the chunk get garbage. G: gathers in flight (kGroup).
template <bool kVec4, class T, int G = kGroup>
__device__ __forceinline__ void label_scores(DeviceStatus* st, const RowSparseDev& rows, const T* xT, int B,
                                             uint32_t I, int64_t e0, int64_t e1, int c0, int nb, int lane,
                                             float w0, uint32_t s0, float acc[4]) {
  if constexpr (kVec4 && sizeof(T) == 2 && kBf16Wide) {
    if ((B & 7) == 0) return label_scores_bf16_wide<G>(st, rows, xT, B, I, e0, e1, c0, nb, lane, w0, s0, acc);
  }
  for (int64_t e = e0; e < e1; e += 32) {
    float w;
    uint32_t s;
    group_connection(st, rows, e, e0, e1, I, lane, w0, s0, w, s);
    const int n = (int)min64(32, e1 - e);
    for (int j0 = 0; j0 < n; j0 += G) {
      float wj[G];
      float4 v[G];
#pragma unroll
      for (int u = 0; u < G; ++u) {
        wj[u] = __shfl_sync(kFullMask, w, j0 + u);
        v[u] = lane_rows<kVec4>(xT + (int64_t)__shfl_sync(kFullMask, s, j0 + u) * B + c0, lane, nb);
      }
#pragma unroll
      for (int u = 0; u < G; ++u) {
        if (j0 + u < n) {
          acc[0] += wj[u] * v[u].x;
          acc[1] += wj[u] * v[u].y;
          acc[2] += wj[u] * v[u].z;
          acc[3] += wj[u] * v[u].w;
        }
      }
    }
  }
}

__device__ __forceinline__ void scatter_add4(float* p, float a, float b, float c, float d) {
#if defined(XMC_KEEP_IN_L2) && __CUDA_ARCH__ >= 900
  asm volatile("red.global.add.L2::cache_hint.v4.f32 [%0], {%1, %2, %3, %4}, %5;" ::"l"(p), "f"(a), "f"(b), "f"(c),
               "f"(d), "l"(keep_policy())
               : "memory");
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float4*>(p), make_float4(a, b, c, d));
#else
  atomicAdd(p, a);
  atomicAdd(p + 1, b);
  atomicAdd(p + 2, c);
  atomicAdd(p + 3, d);
#endif
}

// One label's backward for the chunk from its gradient gv (this lane's rows, as
// label_scores): dW[e] = (first ? 0 : dW[e]) + sum_b g[b] * xT[src[e], b], and
// dXT[src[e], b] += W[e] * g[b] (atomics; dXT may be null). With skip_zero, rows
// whose gradient is 0 do no atomics. Every lane of the warp calls it.
template <bool kVec4, class T>
__device__ __forceinline__ void label_backward(DeviceStatus* st, const RowSparseDev& rows, const T* xT, int B,
                                               uint32_t I, int64_t e0, int64_t e1, int c0, int nb, int lane,
                                               float w0, uint32_t s0, const float gv[4], bool first, bool skip_zero,
                                               float* dXT, float* dW) {
  // Lanes past the chunk have gv = 0 (callers' contract) and read a valid address (vec4_offset, scalar_row).
  const bool lane_has_g = !skip_zero || gv[0] != 0.0f || gv[1] != 0.0f || gv[2] != 0.0f || gv[3] != 0.0f;
  for (int64_t e = e0; e < e1; e += 32) {
    float w;
    uint32_t s;
    group_connection(st, rows, e, e0, e1, I, lane, w0, s0, w, s);
    const int n = (int)min64(32, e1 - e);
    float mine = 0.0f;  // lane j keeps the dot product of connection e + j
    for (int j0 = 0; j0 < n; j0 += kBackwardGroup) {
      uint32_t sj[kBackwardGroup];
      float4 v[kBackwardGroup];
#pragma unroll
      for (int u = 0; u < kBackwardGroup; ++u) {  // the group's gathers first (see kBackwardGroup)
        sj[u] = __shfl_sync(kFullMask, s, j0 + u);
        v[u] = lane_rows<kVec4>(xT + (int64_t)sj[u] * B + c0, lane, nb);
      }
#pragma unroll
      for (int u = 0; u < kBackwardGroup; ++u) {
        const int j = j0 + u;
        if (j >= n) break;  // warp-uniform
        const float wj = __shfl_sync(kFullMask, w, j);
        const int64_t base = (int64_t)sj[u] * B + c0;
        float dot = (gv[0] * v[u].x + gv[1] * v[u].y) + (gv[2] * v[u].z + gv[3] * v[u].w);
        if (kVec4) {
          if (dXT && lane_has_g && lane * 4 < nb)
            scatter_add4(dXT + base + lane * 4, wj * gv[0], wj * gv[1], wj * gv[2], wj * gv[3]);
        } else {
#pragma unroll
          for (int r = 0; r < 4; ++r) {
            const int b = lane + 32 * r;
            if (dXT && b < nb && (!skip_zero || gv[r] != 0.0f)) scatter_add1(dXT + base + b, wj * gv[r]);
          }
        }
        dot = warp_sum(dot);
        if (lane == j) mine = dot;
      }
    }
    if (lane < n) store_once(dW + e + lane, first ? mine : dW[e + lane] + mine);
  }
}

// label_backward for a label whose gathered runs are in the warp's cache (label_scores_bf16_wide with a
// cache: n = e1 - e0 <= kCacheConnections, lane rows 4 lane .. 4 lane + 3): the same sums in the same order
// (so the same results), the runs read from shared memory instead of gathered from hT again.
__device__ __forceinline__ void label_backward_cached(DeviceStatus* st, const RowSparseDev& rows, const uint16_t* cache,
                                                      int B, uint32_t I, int64_t e0, int64_t e1, int c0, int nb,
                                                      int lane, float w, uint32_t s, const float gv[4], bool first,
                                                      float* dXT, float* dW) {
  const bool lane_has_g = gv[0] != 0.0f || gv[1] != 0.0f || gv[2] != 0.0f || gv[3] != 0.0f;
  const bool in_chunk = lane * 4 < nb;
  const int n = (int)(e1 - e0);
  float mine = 0.0f;
  for (int j = 0; j < n; ++j) {
    const float wj = __shfl_sync(kFullMask, w, j);
    const uint32_t sj = __shfl_sync(kFullMask, s, j);
    const float4 v = in_chunk ? load4(cache + j * kCacheStride + lane * 4) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float dot = (gv[0] * v.x + gv[1] * v.y) + (gv[2] * v.z + gv[3] * v.w);
    if (dXT && lane_has_g && in_chunk)
      scatter_add4(dXT + (int64_t)sj * B + c0 + lane * 4, wj * gv[0], wj * gv[1], wj * gv[2], wj * gv[3]);
    dot = warp_sum(dot);
    if (lane == j) mine = dot;
  }
  if (lane < n) store_once(dW + e0 + lane, first ? mine : dW[e0 + lane] + mine);
}

template <bool kVec4>
__global__ __launch_bounds__(kThreads) void forward_kernel(DeviceStatus* st, RowSparseDev rows, const float* bias,
                                                           const float* xT, int B, uint32_t I, int64_t l0, int64_t l1,
                                                           float* out, int64_t ldo) {
  XMC_RETURN_IF_FAILED(st);
  __shared__ __align__(16) float tile[kTileLabels][kChunk + kPad];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t la = l0 + (int64_t)blockIdx.x * kTileLabels;
  const int nl = (int)min64(kTileLabels, l1 - la);
  for (int c0 = 0; c0 < B; c0 += kChunk) {
    const int nb = min(kChunk, B - c0);
    for (int t = warp; t < nl; t += kWarps) {
      const int64_t l = la + t, e0 = row_begin(rows, l), e1 = row_end(rows, l);
      float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f}, w0;
      uint32_t s0;
      load_connection(st, rows, e0 + lane, e1, I, w0, s0);
      label_scores<kVec4, float>(st, rows, xT, B, I, e0, e1, c0, nb, lane, w0, s0, acc);
      if (kVec4) {
        if (lane * 4 < nb) *reinterpret_cast<float4*>(&tile[t][lane * 4]) = make_float4(acc[0], acc[1], acc[2], acc[3]);
      } else {
#pragma unroll
        for (int r = 0; r < 4; ++r)
          if (lane + 32 * r < nb) tile[t][lane + 32 * r] = acc[r];
      }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < nb * kTileLabels; i += kThreads) {
      const int b = i / kTileLabels, t = i % kTileLabels;
      if (t < nl) out[(int64_t)(c0 + b) * ldo + (la - l0) + t] = tile[t][b] + (bias ? bias[la + t] : 0.0f);
    }
    __syncthreads();
  }
}

template <bool kVec4>
__global__ __launch_bounds__(kThreads) void backward_kernel(DeviceStatus* st, RowSparseDev rows, const float* xT, int B,
                                                            uint32_t I, int64_t L, const float* dOut, float* dXT,
                                                            float* dW, float* dB) {
  XMC_RETURN_IF_FAILED(st);
  __shared__ __align__(16) float g[kTileLabels][kChunk + kPad];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t la = (int64_t)blockIdx.x * kTileLabels;
  const int nl = (int)min64(kTileLabels, L - la);
  for (int c0 = 0; c0 == 0 || c0 < B; c0 += kChunk) {  // B = 0: one pass that writes zeros
    const int nb = max(0, min(kChunk, B - c0));
    const bool first = c0 == 0;
    for (int i = threadIdx.x; i < nb * kTileLabels; i += kThreads) {
      const int b = i / kTileLabels, t = i % kTileLabels;
      g[t][b] = t < nl ? dOut[(int64_t)(c0 + b) * L + la + t] : 0.0f;
    }
    __syncthreads();
    for (int t = warp; t < nl; t += kWarps) {
      const int64_t l = la + t, e0 = row_begin(rows, l), e1 = row_end(rows, l);
      float gv[4];
      if (kVec4) {
        if (lane * 4 < nb) {
          const float4 v = *reinterpret_cast<const float4*>(&g[t][lane * 4]);
          gv[0] = v.x, gv[1] = v.y, gv[2] = v.z, gv[3] = v.w;
        } else {
          gv[0] = gv[1] = gv[2] = gv[3] = 0.0f;
        }
      } else {
#pragma unroll
        for (int r = 0; r < 4; ++r) gv[r] = lane + 32 * r < nb ? g[t][lane + 32 * r] : 0.0f;
      }
      const float gsum = warp_sum((gv[0] + gv[1]) + (gv[2] + gv[3]));
      if (lane == 0) dB[l] = first ? gsum : dB[l] + gsum;
      float w0;
      uint32_t s0;
      load_connection(st, rows, e0 + lane, e1, I, w0, s0);
      label_backward<kVec4, float>(st, rows, xT, B, I, e0, e1, c0, nb, lane, w0, s0, gv, first, false, dXT, dW);
    }
    __syncthreads();
  }
}

// The loss term and its gradient (scaled) at score s with target y (formulas: loss.cu).
__device__ __forceinline__ float loss_term(bool bce, float s, bool y, float scale, float* grad) {
  if (!bce) {
    const float m = fmaxf(0.0f, y ? 1.0f - s : 1.0f + s);
    *grad = (y ? -2.0f : 2.0f) * m * scale;
    return m * m;
  }
  const float e = expf(-fabsf(s));
  const float sig = s >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);  // sigmoid(s)
  const float softplus = fmaxf(s, 0.0f) + log1pf(e);
  if (y) {
    *grad = -(s >= 0.0f ? e / (1.0f + e) : 1.0f / (1.0f + e)) * scale;  // -sigmoid(-s)
    return softplus - s;
  }
  *grad = sig * scale;
  return softplus;
}

// kCache (bf16 hT, B % 8 == 0, launched with kCacheBytesPerBlock of dynamic shared memory): a label of at
// most kCacheConnections connections keeps its forward's gathered runs in the warp's cache and its backward
// reads them from there (label_backward_cached, and the few-rows path) instead of gathering hT a second time.
template <bool kVec4, class T, bool kCache = false>
__global__ __launch_bounds__(kLossThreads, kLossMinBlocks) void loss_backward_kernel(DeviceStatus* st, RowSparseDev rows, const float* bias,
                                                                 const T* xT, int B, uint32_t I, int64_t L,
                                                                 FusedLossDev loss, float* dXT, float* dW, float* dB) {
  XMC_RETURN_IF_FAILED(st);
  extern __shared__ __align__(16) uint16_t loss_cache[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  double warp_loss = 0.0;
  // Labels warp, warp + 4 * gridDim.x, ... (a few dozen per warp at L = 670k): a block holds its
  // multiprocessor slot until its slowest warp is done, and labels' costs vary (no rows of gradient to
  // all 128), so each warp takes many labels for the sums of their costs to even out.
  const int64_t stride = (int64_t)gridDim.x * kLossWarps;
  for (int64_t l = (int64_t)blockIdx.x * kLossWarps + warp; l < L; l += stride) {
    const int64_t e0 = row_begin(rows, l), e1 = row_end(rows, l);
    uint16_t* cache = nullptr;
    if constexpr (kCache) {
      if (e1 - e0 <= kCacheConnections) cache = loss_cache + warp * kCacheConnections * kCacheStride;
    }
    // The label's first 32 connections, once for all its chunks, its scores and its backward.
    const float bl = load_once(bias + l);
    float w0;
    uint32_t s0;
    load_connection(st, rows, e0 + lane, e1, I, w0, s0);
    const uint32_t bit = 1u << (l % 32);
    const int64_t word = l / 32;
    for (int c0 = 0; c0 == 0 || c0 < B; c0 += kChunk) {  // B = 0: one pass that writes zeros
      const int nb = max(0, min(kChunk, B - c0));
      const bool first = c0 == 0;
      // Forward: this lane's rows of the label's scores.
      // The targets' bitmap words first: their loads are in flight while the scores are gathered.
      // Word-major bitmap: the chunk's words of this label are contiguous (one 16-byte load per lane).
      uint32_t ywords[4];
      const uint32_t* yw = loss.bits + word * B + c0;
      if (kVec4) {
        const uint4 q = lane * 4 < nb ? *reinterpret_cast<const uint4*>(yw + lane * 4) : make_uint4(0u, 0u, 0u, 0u);
        ywords[0] = q.x, ywords[1] = q.y, ywords[2] = q.z, ywords[3] = q.w;
      } else {
#pragma unroll
        for (int r = 0; r < 4; ++r) ywords[r] = lane + 32 * r < nb ? yw[lane + 32 * r] : 0u;
      }
      float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      if constexpr (kCache) {
        __syncwarp();  // the previous chunk's backward is done with the cache
        if (cache) label_scores_bf16_wide<kLossGroup>(st, rows, xT, B, I, e0, e1, c0, nb, lane, w0, s0, acc, cache);
        else label_scores<kVec4, T, kLossGroup>(st, rows, xT, B, I, e0, e1, c0, nb, lane, w0, s0, acc);
        __syncwarp();  // the cache's stores are visible to the whole warp
      } else {
        label_scores<kVec4, T, kLossGroup>(st, rows, xT, B, I, e0, e1, c0, nb, lane, w0, s0, acc);
      }
      // Loss and gradient, in registers.
      float gv[4];
      float lane_loss = 0.0f;
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int b = kVec4 ? lane * 4 + r : lane + 32 * r;
        gv[r] = 0.0f;
        if (b < nb) {
          const bool y = (ywords[r] & bit) != 0;
          lane_loss += loss_term(loss.bce, acc[r] + bl, y, loss.scale, &gv[r]);
        }
      }
      warp_loss += warp_sum(static_cast<double>(lane_loss));
      const float gsum = warp_sum((gv[0] + gv[1]) + (gv[2] + gv[3]));
      if (lane == 0) store_once(dB + l, first ? gsum : dB[l] + gsum);
      unsigned rows_with_g[4];
      int count = 0;
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        rows_with_g[r] = __ballot_sync(kFullMask, gv[r] != 0.0f);
        count += __popc(rows_with_g[r]);
      }
      if (count == 0) {  // no gradient for this label in this chunk
        if (first)
          for (int64_t e = e0 + lane; e < e1; e += 32) store_once(dW + e, 0.0f);
        continue;
      }
      if (count <= kSparseRows) {
        // Few rows with a gradient: lane j takes connection j and visits only those rows
        // (one 4-byte load and one atomic each) instead of gathering whole rows of hT.
        for (int64_t e = e0; e < e1; e += 32) {
          float w;
          uint32_t s;
          group_connection(st, rows, e, e0, e1, I, lane, w0, s0, w, s);
          const bool mine = e + lane < e1;
          // The run of connection e + lane: the cached copy (e == e0 then), else hT.
          const T* xs = xT + (int64_t)s * B + c0;
          if constexpr (kCache) {
            if (cache) xs = reinterpret_cast<const T*>(cache + lane * kCacheStride);
          }
          float* dxs = dXT ? dXT + (int64_t)s * B + c0 : nullptr;
          float dot = 0.0f;
#pragma unroll
          for (int r = 0; r < 4; ++r) {
            for (unsigned m = rows_with_g[r]; m != 0; m &= m - 1) {  // warp-uniform
              const int t = __ffs(m) - 1;
              const float gb = __shfl_sync(kFullMask, gv[r], t);
              const int b = kVec4 ? t * 4 + r : t + 32 * r;
              if (mine) {
                dot += gb * ((kCache && cache) ? load1(xs + b) : gather1(xs + b));  // the cache is shared memory
                if (dxs) scatter_add1(dxs + b, w * gb);
              }
            }
          }
          if (mine) store_once(dW + e + lane, first ? dot : dW[e + lane] + dot);
        }
        continue;
      }
      // Backward from g: dW (dot products) and the dX scatter, as backward_kernel (zero rows skip their atomics).
      if constexpr (kCache) {
        if (cache) {
          label_backward_cached(st, rows, cache, B, I, e0, e1, c0, nb, lane, w0, s0, gv, first, dXT, dW);
          continue;
        }
      }
      label_backward<kVec4, T>(st, rows, xT, B, I, e0, e1, c0, nb, lane, w0, s0, gv, first, true, dXT, dW);
    }
  }
  __shared__ double warps[kLossWarps];
  if (lane == 0) warps[warp] = warp_loss;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0.0;
    for (int w = 0; w < kLossWarps; ++w) t += warps[w];
    loss.partial[blockIdx.x] = t;
  }
}

// --- fused top-k ---------------------------------------------------------------
// Block b owns labels [b * per_block, (b + 1) * per_block): per batch chunk of
// 128 rows, its warps compute the scores of 64 labels at a time (as the forward
// kernel, into a shared [64, 128] tile), and two threads per row keep the row's
// top k keys of the labels they scan (32 of each tile) in registers. Each
// thread then writes its k keys: cand [B, blocks * 2 * k]. topk_select_kernel
// reduces a row's candidates to its top k ([B, k], for topk_finish).
constexpr int kTopKTile = 64;
static_assert(kThreads == 2 * kChunk, "topk_scores_kernel: two threads per row of a batch chunk");

// Inserts x into the descending list keys[K] of a thread's best keys (the last one drops out): an unrolled
// pass, so that the list stays in registers (K a template constant).
template <int K>
__device__ __forceinline__ void insert_key(unsigned long long (&keys)[K], unsigned long long x) {
#pragma unroll
  for (int i = 0; i < K; ++i) {
    if (x > keys[i]) {
      const unsigned long long y = keys[i];
      keys[i] = x;
      x = y;
    }
  }
}

// Each thread keeps a sorted list of its K >= k best keys (K a template constant, so the list
// stays in registers: with a runtime k the compiler indexed it in local memory); the floor a new
// key must beat is the K-th, and the first k go out.
template <bool kVec4, class T, int K>
__global__ __launch_bounds__(kThreads, kFusedMinBlocks) void topk_scores_kernel(DeviceStatus* st, RowSparseDev rows, const float* bias,
                                                               const T* xT, int B, uint32_t I, int64_t L,
                                                               int64_t per_block, int k, unsigned long long* cand,
                                                               int64_t per_row) {
  XMC_RETURN_IF_FAILED(st);
  __shared__ __align__(16) float tile[kTopKTile][kChunk + kPad];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = threadIdx.x / 2, half = threadIdx.x % 2;  // 256 threads: 2 per row of a 128-row chunk
  const int64_t lb0 = (int64_t)blockIdx.x * per_block, lb1 = min64(L, lb0 + per_block);
  for (int c0 = 0; c0 < B; c0 += kChunk) {
    const int nb = min(kChunk, B - c0);
    unsigned long long keys[K];  // descending; 0 = empty
#pragma unroll
    for (int i = 0; i < K; ++i) keys[i] = 0ull;
    for (int64_t la = lb0; la < lb1; la += kTopKTile) {
      const int nl = (int)min64(kTopKTile, lb1 - la);
      for (int t = warp; t < nl; t += kWarps) {
        const int64_t l = la + t;
        const float bl = bias ? bias[l] : 0.0f;
        const int64_t e0 = row_begin(rows, l), e1 = row_end(rows, l);
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f}, w0;
        uint32_t s0;
        load_connection(st, rows, e0 + lane, e1, I, w0, s0);
        label_scores<kVec4, T>(st, rows, xT, B, I, e0, e1, c0, nb, lane, w0, s0, acc);
        if (kVec4) {
          if (lane * 4 < nb)
            *reinterpret_cast<float4*>(&tile[t][lane * 4]) = make_float4(acc[0] + bl, acc[1] + bl, acc[2] + bl, acc[3] + bl);
        } else {
#pragma unroll
          for (int r = 0; r < 4; ++r)
            if (lane + 32 * r < nb) tile[t][lane + 32 * r] = acc[r] + bl;
        }
      }
      __syncthreads();
      if (row < nb) {
        const int j1 = min(nl, (half + 1) * (kTopKTile / 2));
        for (int j = half * (kTopKTile / 2); j < j1; ++j) {
          unsigned long long x = topk_key(tile[j][row], static_cast<uint32_t>(la + j));
          if (x <= keys[K - 1]) continue;
          insert_key(keys, x);
        }
      }
      __syncthreads();
    }
    if (row < nb) {
      unsigned long long* out = cand + (int64_t)(c0 + row) * per_row + ((int64_t)blockIdx.x * 2 + half) * k;
#pragma unroll
      for (int i = 0; i < K; ++i)
        if (i < k) out[i] = keys[i];
    }
  }
}

// --- fused top-k over int8 inputs (the int8TopK option) -------------------------
// The arithmetic of native/common/int8_topk.h: inputs xT [I, ld] as signed bytes q (transpose_int8,
// ld a multiple of 16), each label's weights rounded to 16 bits with a power-of-two scale and split
// into signed bytes hi, lo, and exact int32 sums of q hi and q lo by __dp4a, four connections at a
// time; the CPU backend's int8 reference computes the same integers, so the two agree bit for bit.
// A warp computes one label's scores for a chunk of 32 R batch rows (R = 4, 8 or 16 bytes per
// lane: the smallest chunk that holds the batch, at most 512 rows): lane takes rows lane R ..
// lane R + R - 1, one R-byte load per connection, so no two lanes share a row and no sum crosses
// lanes. The loads of 4 connections are transposed with byte permutes (8 per 16 bytes) into words
// that hold one row's bytes of the 4 connections, the layout __dp4a multiplies with the 4
// connections' packed weight bytes: per 4 connections and 4 rows, 8 permutes and 8 dp4a where the
// float version (each byte made a float 1 + u 2^-15 and fma(w, x, -w) added) took 48 instructions.
// A block has R warps, 32 R threads: one per row of the chunk. The warps take the block's labels
// R at a time (one each) into a shared tile [R labels][32 R rows] of float(256 acc_hi + acc_lo) 2^e_l
// (float4 slots swizzled so that the lanes' stores and the rows' reads meet no bank conflict); then
// each thread scores its row, fma(s_b, tile, bias), keeps its top K keys in registers, as
// topk_scores_kernel does, and writes k of them per chunk: cand [B, blocks * k]
// (rowsparse_topk_candidates).
#ifndef XMC_INT8_QUADS
#define XMC_INT8_QUADS 2
#endif
constexpr int kInt8Quads = XMC_INT8_QUADS;  // groups of 4 connections whose loads are in flight at once
static_assert(32 % (4 * kInt8Quads) == 0, "XMC_INT8_QUADS must divide 8");

template <int R>
__device__ __forceinline__ void load_bytes(const uint8_t* p, uint32_t q[R / 4]) {
  if constexpr (R == 16) {
    const uint4 v = *reinterpret_cast<const uint4*>(p);
    q[0] = v.x, q[1] = v.y, q[2] = v.z, q[3] = v.w;
  } else if constexpr (R == 8) {
    const uint2 v = *reinterpret_cast<const uint2*>(p);
    q[0] = v.x, q[1] = v.y;
  } else {
    q[0] = *reinterpret_cast<const uint32_t*>(p);
  }
}

// Words v0..v3 hold 4 rows' bytes of connections 0..3; t[r] gets row r's bytes of the 4 connections
// (connection c in byte c).
__device__ __forceinline__ void transpose_bytes(uint32_t v0, uint32_t v1, uint32_t v2, uint32_t v3, uint32_t t[4]) {
  const uint32_t a = __byte_perm(v0, v1, 0x5140), b = __byte_perm(v0, v1, 0x7362);  // rows 0, 1 | rows 2, 3 of v0, v1
  const uint32_t c = __byte_perm(v2, v3, 0x5140), d = __byte_perm(v2, v3, 0x7362);
  t[0] = __byte_perm(a, c, 0x5410);
  t[1] = __byte_perm(a, c, 0x7632);
  t[2] = __byte_perm(b, d, 0x5410);
  t[3] = __byte_perm(b, d, 0x7632);
}

// One label's values float(256 acc_hi + acc_lo) 2^e_l for this lane's rows r (xc: the chunk's column of
// xT plus the lane's offset). All lanes call it.
template <int R>
__device__ __forceinline__ void int8_label_values(DeviceStatus* st, const RowSparseDev& rows, const uint8_t* xc,
                                                  int64_t ld, uint32_t I, int64_t e0, int64_t e1, int lane, float v[R]) {
  // the label's scale, from its largest |w| (rows of more than 32 connections read theirs twice)
  float w;
  uint32_t s;
  load_connection(st, rows, e0 + lane, e1, I, w, s);
  AbsMax am;
  am.add(w);
  for (int64_t e = e0 + 32; e < e1; e += 32) {
    float w2;
    uint32_t s2;
    load_connection(st, rows, e + lane, e1, I, w2, s2);
    am.add(w2);
  }
  float m = am.m;
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(kFullMask, m, o));
  const float scale = int8_weight_scale(m, __all_sync(kFullMask, am.finite));
  int acc_hi[R], acc_lo[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc_hi[r] = 0, acc_lo[r] = 0;
  for (int64_t e = e0; e < e1; e += 32) {
    if (e != e0) load_connection(st, rows, e + lane, e1, I, w, s);
    int hi, lo;
    int8_weight_bytes(w, scale, hi, lo);  // 0 past the row's end (w = 0)
    // quad q's packed weight bytes (connection 4q + c in byte c), in every lane of the quad
    uint32_t hw = static_cast<uint32_t>(hi & 0xFF) << (8 * (lane & 3)), lw = static_cast<uint32_t>(lo & 0xFF) << (8 * (lane & 3));
    hw |= __shfl_xor_sync(kFullMask, hw, 1);
    lw |= __shfl_xor_sync(kFullMask, lw, 1);
    hw |= __shfl_xor_sync(kFullMask, hw, 2);
    lw |= __shfl_xor_sync(kFullMask, lw, 2);
    const int n = (int)min64(32, e1 - e);
    for (int j0 = 0; j0 < n; j0 += 4 * kInt8Quads) {  // j0 + 4 kInt8Quads <= 32
      uint32_t x[kInt8Quads][4][R / 4];
      int hq[kInt8Quads], lq[kInt8Quads];
#pragma unroll
      for (int g = 0; g < kInt8Quads; ++g) {
        const int j = j0 + 4 * g;
        hq[g] = static_cast<int>(__shfl_sync(kFullMask, hw, j));
        lq[g] = static_cast<int>(__shfl_sync(kFullMask, lw, j));
#pragma unroll
        for (int c = 0; c < 4; ++c) load_bytes<R>(xc + (int64_t)__shfl_sync(kFullMask, s, j + c) * ld, x[g][c]);
      }
#pragma unroll
      for (int g = 0; g < kInt8Quads; ++g) {
#pragma unroll
        for (int i = 0; i < R / 4; ++i) {
          uint32_t t[4];
          transpose_bytes(x[g][0][i], x[g][1][i], x[g][2][i], x[g][3][i], t);
#pragma unroll
          for (int r = 0; r < 4; ++r) {
            acc_hi[4 * i + r] = __dp4a(static_cast<int>(t[r]), hq[g], acc_hi[4 * i + r]);
            acc_lo[4 * i + r] = __dp4a(static_cast<int>(t[r]), lq[g], acc_lo[4 * i + r]);
          }
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) v[r] = static_cast<float>(256 * static_cast<int64_t>(acc_hi[r]) + acc_lo[r]) * scale;
}

// Float slot f (4 rows) of a tile row is stored at slot f ^ ((f >> 3) & (R / 4 - 1)): the 8 lanes of a
// float4 store phase (slots 4L + i, R = 16) then cover 8 distinct bank groups, and 32 consecutive rows
// still read 32 distinct banks (the swizzle permutes slots within aligned groups of 4).
template <int R>
__device__ __forceinline__ int tile_slot(int f) { return f ^ ((f >> 3) & (R / 4 - 1)); }

__device__ __forceinline__ float key_floor_score(unsigned long long key) {  // NaN for key 0 (an empty slot)
  const uint32_t ord = static_cast<uint32_t>(key >> 32);
  return __uint_as_float((ord & 0x80000000u) ? (ord & 0x7FFFFFFFu) : ~ord);
}

template <int R, int K>
__global__ __launch_bounds__(32 * R) void topk_int8_kernel(DeviceStatus* st, RowSparseDev rows, const float* bias,
                                                          const uint8_t* xT, int64_t ld, const float* scale, int B,
                                                          uint32_t I, int64_t L, int64_t per_block, int k,
                                                          unsigned long long* cand, int64_t per_row) {
  XMC_RETURN_IF_FAILED(st);
  constexpr int kRows = 32 * R;                              // batch rows per chunk: one per thread
  constexpr int kLabels = R;                                 // labels per tile: one per warp
  __shared__ __align__(16) float tile[kLabels][kRows];
  __shared__ float tile_bias[kLabels];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, row = threadIdx.x;
  const int row_at = tile_slot<R>(row >> 2) * 4 + (row & 3);  // where this thread's row sits in a tile row
  const int64_t lb0 = (int64_t)blockIdx.x * per_block, lb1 = min64(L, lb0 + per_block);
  for (int c0 = 0; c0 < B; c0 += kRows) {
    const int nb = min(kRows, B - c0);
    const int off = lane * R < nb ? lane * R : 0;  // lanes past the chunk read rows 0 .. R-1 and drop them
    const float row_scale = row < nb ? scale[c0 + row] : 0.0f;
    unsigned long long keys[K];  // descending; 0 = empty
#pragma unroll
    for (int i = 0; i < K; ++i) keys[i] = 0ull;
    float floor_score = key_floor_score(0ull);  // a score below the K-th key's cannot enter
    const uint8_t* xc = xT + c0 + off;
    for (int64_t la = lb0; la < lb1; la += kLabels) {
      const int nl = (int)min64(kLabels, lb1 - la);
      if (warp < nl) {
        const int64_t l = la + warp;
        float a[R];
        int8_label_values<R>(st, rows, xc, ld, I, row_begin(rows, l), row_end(rows, l), lane, a);
        if (lane == 0) tile_bias[warp] = bias ? bias[l] : 0.0f;
#pragma unroll
        for (int i = 0; i < R / 4; ++i)
          *reinterpret_cast<float4*>(&tile[warp][tile_slot<R>(lane * (R / 4) + i) * 4]) =
              make_float4(a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]);
      }
      __syncthreads();
      if (row < nb) {
        for (int j = 0; j < nl; ++j) {
          const float score = fmaf(row_scale, tile[j][row_at], tile_bias[j]);  // int8_score (native/common/int8_topk.h)
          if (score < floor_score) continue;  // false for a NaN floor (a free slot) or score: the full test
          unsigned long long x = topk_key(score, static_cast<uint32_t>(la + j));
          if (x <= keys[K - 1]) continue;
          insert_key(keys, x);
          floor_score = key_floor_score(keys[K - 1]);
        }
      }
      __syncthreads();
    }
    if (row < nb) {
      unsigned long long* out = cand + (int64_t)(c0 + row) * per_row + (int64_t)blockIdx.x * k;
#pragma unroll
      for (int i = 0; i < K; ++i)
        if (i < k) out[i] = keys[i];
    }
  }
}

// Bytes per lane of the int8 top-k for a batch of B rows: the smallest chunk (32 R rows) that holds it.
int int8_lane_bytes(int64_t B) { return B <= 128 ? 4 : B <= 256 ? 8 : 16; }

// One warp per row: the k largest of the row's n candidate keys -> out [B, k] (descending; 0 = empty).
// Each lane keeps its K >= k best (K constant: registers, as topk_scores_kernel).
template <int K>
__global__ __launch_bounds__(kThreads) void topk_select_kernel(const DeviceStatus* st, const unsigned long long* cand,
                                                               int64_t n, int B, int k, unsigned long long* out) {
  XMC_RETURN_IF_FAILED(st);
  const int lane = threadIdx.x % 32;
  const int64_t b = (int64_t)blockIdx.x * kWarps + threadIdx.x / 32;
  if (b >= B) return;
  unsigned long long keys[K];
#pragma unroll
  for (int i = 0; i < K; ++i) keys[i] = 0ull;
  for (int64_t i = lane; i < n; i += 32) {
    unsigned long long x = cand[b * n + i];
    if (x <= keys[K - 1]) continue;
    insert_key(keys, x);
  }
  // k rounds: the warp's largest head wins and is popped by its lane (keys are distinct, except 0).
  for (int r = 0; r < k; ++r) {
    unsigned long long best = keys[0];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const unsigned long long other = __shfl_xor_sync(kFullMask, best, o);
      best = other > best ? other : best;
    }
    if (lane == 0) out[b * k + r] = best;
    if (best != 0ull && keys[0] == best) {
#pragma unroll
      for (int j = 0; j + 1 < K; ++j) keys[j] = keys[j + 1];
      keys[K - 1] = 0ull;
    }
  }
}

__global__ void csr_row_ptr_kernel(DeviceStatus* st, const uint32_t* rp, int64_t L, int64_t nnz) {
  XMC_RETURN_IF_FAILED(st);
  for (int64_t l = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; l <= L; l += (int64_t)gridDim.x * blockDim.x) {
    if (l == 0 && rp[0] != 0) record_failure(st, 1, 0);
    if (l < L && rp[l + 1] < rp[l]) record_failure(st, 2, static_cast<unsigned long long>(l));
    if (l == L && static_cast<int64_t>(rp[L]) != nnz) record_failure(st, 3, static_cast<unsigned long long>(L));
  }
}

void check_dims(const Launch& ctx, int64_t B, int64_t I) {
  if (B > 2147483647 || I > 4294967295LL)
    throw CudaFailure(std::string(ctx.op) + ": batch above 2^31 - 1 or more than 2^32 inputs is not supported");
}

}  // namespace

void rowsparse_forward(const Launch& ctx, const RowSparseDev& rows, const float* bias, const float* xT, int64_t B,
                       int64_t I, int64_t l0, int64_t l1, float* out, int64_t ldo) {
  if (l1 <= l0 || B <= 0) return;
  check_dims(ctx, B, I);
  const int64_t blocks = (l1 - l0 + kTileLabels - 1) / kTileLabels;
  if (B % 4 == 0)
    forward_kernel<true><<<(unsigned)blocks, kThreads, 0, ctx.stream>>>(ctx.status, rows, bias, xT, (int)B, (uint32_t)I, l0, l1, out, ldo);
  else
    forward_kernel<false><<<(unsigned)blocks, kThreads, 0, ctx.stream>>>(ctx.status, rows, bias, xT, (int)B, (uint32_t)I, l0, l1, out, ldo);
  check_launch(ctx.op, "rowsparse forward_kernel");
}

void rowsparse_backward(const Launch& ctx, const RowSparseDev& rows, int64_t L, int64_t I, const float* xT, int64_t B,
                        const float* dOut, float* dXT, float* dW, float* dB) {
  if (L <= 0) return;
  check_dims(ctx, B, I);
  const int64_t blocks = (L + kTileLabels - 1) / kTileLabels;
  if (B % 4 == 0)
    backward_kernel<true><<<(unsigned)blocks, kThreads, 0, ctx.stream>>>(ctx.status, rows, xT, (int)B, (uint32_t)I, L, dOut, dXT, dW, dB);
  else
    backward_kernel<false><<<(unsigned)blocks, kThreads, 0, ctx.stream>>>(ctx.status, rows, xT, (int)B, (uint32_t)I, L, dOut, dXT, dW, dB);
  check_launch(ctx.op, "rowsparse backward_kernel");
}

// Blocks per multiprocessor of the fused loss kernel's grid (XMC_LOSS_BLOCKS_PER_SM, a build knob for A/B
// runs): 20 is four full waves at 5 resident blocks of 4 warps (96 registers). 10 and 40 ran as fast on an
// H200; 5 (one wave) was slower in FP32 (25k samples/s against 31k), where only 4 blocks are resident.
#ifndef XMC_LOSS_BLOCKS_PER_SM
#define XMC_LOSS_BLOCKS_PER_SM 20
#endif
int64_t rowsparse_loss_backward_blocks(int64_t L, int multiprocessors) {
  const int64_t cap = (int64_t)std::max(1, multiprocessors) * XMC_LOSS_BLOCKS_PER_SM;
  return std::max<int64_t>(1, std::min<int64_t>((L + kLossWarps - 1) / kLossWarps, cap));
}

template <class T>
static void launch_loss_backward(const Launch& ctx, unsigned blocks, const RowSparseDev& rows, const float* bias, int64_t L,
                                 int64_t I, const T* xT, int64_t B, const FusedLossDev& loss, float* dXT, float* dW, float* dB) {
  if constexpr (sizeof(T) == 2 && kBf16Wide && kUseCache) {
    // Once per process: the cache needs 68 KiB of shared memory per block, more than sm_75 allows (64 KiB);
    // where the attribute is refused the uncached kernel runs (same results).
    static const bool cache_fits = [] {
      const bool ok = cudaFuncSetAttribute(loss_backward_kernel<true, T, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           (int)kCacheBytesPerBlock) == cudaSuccess;
      if (!ok) cudaGetLastError();  // not sticky: clear it
      return ok;
    }();
    if (B % 8 == 0 && cache_fits) {  // bf16 16-byte gathers: the cached kernel
      loss_backward_kernel<true, T, true><<<blocks, kLossThreads, kCacheBytesPerBlock, ctx.stream>>>(ctx.status, rows, bias, xT, (int)B, (uint32_t)I, L, loss, dXT, dW, dB);
      check_launch(ctx.op, "rowsparse loss_backward_kernel (cached)");
      return;
    }
  }
  if (B % 4 == 0)
    loss_backward_kernel<true, T><<<blocks, kLossThreads, 0, ctx.stream>>>(ctx.status, rows, bias, xT, (int)B, (uint32_t)I, L, loss, dXT, dW, dB);
  else
    loss_backward_kernel<false, T><<<blocks, kLossThreads, 0, ctx.stream>>>(ctx.status, rows, bias, xT, (int)B, (uint32_t)I, L, loss, dXT, dW, dB);
  check_launch(ctx.op, "rowsparse loss_backward_kernel");
}

void rowsparse_loss_backward(const Launch& ctx, const RowSparseDev& rows, const float* bias, int64_t L, int64_t I,
                             GatherInput xT, int64_t B, const FusedLossDev& loss, int64_t blocks, float* dXT, float* dW,
                             float* dB) {
  if (L <= 0) return;
  check_dims(ctx, B, I);
  if (blocks < 1 || blocks > 2147483647) throw CudaFailure(std::string(ctx.op) + ": bad block count of the fused loss");
  if (xT.bf16)
    launch_loss_backward(ctx, (unsigned)blocks, rows, bias, L, I, static_cast<const uint16_t*>(xT.data), B, loss, dXT, dW, dB);
  else
    launch_loss_backward(ctx, (unsigned)blocks, rows, bias, L, I, static_cast<const float*>(xT.data), B, loss, dXT, dW, dB);
}

namespace {

// Blocks per multiprocessor that the int8 kernel keeps resident (a static per instantiation: the query is
// a driver call).
template <int R, int K>
int int8_blocks_per_sm() {
  static const int n = [] {
    int blocks = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, topk_int8_kernel<R, K>, 32 * R, 0) != cudaSuccess) {
      cudaGetLastError();  // not sticky: clear it
      blocks = 1;
    }
    return std::max(1, blocks);
  }();
  return n;
}

int int8_resident_blocks(int64_t B, int64_t k) {
  const bool wide = k > 8;
  switch (int8_lane_bytes(B)) {
    case 4: return wide ? int8_blocks_per_sm<4, kMaxTopK>() : int8_blocks_per_sm<4, 8>();
    case 8: return wide ? int8_blocks_per_sm<8, kMaxTopK>() : int8_blocks_per_sm<8, 8>();
    default: return wide ? int8_blocks_per_sm<16, kMaxTopK>() : int8_blocks_per_sm<16, 8>();
  }
}

}  // namespace

int64_t rowsparse_topk_candidates(int64_t L, int64_t k, int multiprocessors, const GatherInput& xT, int64_t B,
                                  int64_t* per_block) {
  if (xT.int8_scale) {
    // one wave: every resident block gets an equal run of labels (whole tiles of R labels, one per warp);
    // each of its threads writes k keys per row
    const int64_t tile = int8_lane_bytes(B);
    const int64_t target = std::max<int64_t>(1, (int64_t)std::max(1, multiprocessors) * int8_resident_blocks(B, k));
    int64_t pb = (L + target - 1) / target;
    pb = std::max<int64_t>(tile, (pb + tile - 1) / tile * tile);
    *per_block = pb;
    return std::max<int64_t>(1, (L + pb - 1) / pb) * k;
  }
  // about 4 blocks per multiprocessor, whole tiles of 64 labels each
  const int64_t target = std::max<int64_t>(1, 4 * (int64_t)multiprocessors);
  int64_t pb = (L + target - 1) / target;
  pb = std::max<int64_t>(kTopKTile, (pb + kTopKTile - 1) / kTopKTile * kTopKTile);
  *per_block = pb;
  const int64_t blocks = std::max<int64_t>(1, (L + pb - 1) / pb);
  return blocks * 2 * k;
}

namespace {

template <class T, int K>
void launch_topk_scores(const Launch& ctx, unsigned blocks, const RowSparseDev& rows, const float* bias, const T* xT,
                        int64_t B, int64_t I, int64_t L, int64_t per_block, int64_t k, unsigned long long* cand,
                        int64_t per_row) {
  if (B % 4 == 0)
    topk_scores_kernel<true, T, K><<<blocks, kThreads, 0, ctx.stream>>>(ctx.status, rows, bias, xT, (int)B, (uint32_t)I, L, per_block, (int)k, cand, per_row);
  else
    topk_scores_kernel<false, T, K><<<blocks, kThreads, 0, ctx.stream>>>(ctx.status, rows, bias, xT, (int)B, (uint32_t)I, L, per_block, (int)k, cand, per_row);
  check_launch(ctx.op, "rowsparse topk_scores_kernel");
}

template <int R, int K>
void launch_topk_int8_rows(const Launch& ctx, unsigned blocks, const RowSparseDev& rows, const float* bias,
                           const GatherInput& xT, int64_t B, int64_t I, int64_t L, int64_t per_block, int64_t k,
                           unsigned long long* cand, int64_t per_row) {
  topk_int8_kernel<R, K><<<blocks, 32 * R, 0, ctx.stream>>>(ctx.status, rows, bias, static_cast<const uint8_t*>(xT.data), xT.ld,
                                                          xT.int8_scale, (int)B, (uint32_t)I, L, per_block, (int)k, cand, per_row);
  check_launch(ctx.op, "rowsparse topk_int8_kernel");
}

template <int K>
void launch_topk_int8(const Launch& ctx, unsigned blocks, const RowSparseDev& rows, const float* bias, const GatherInput& xT,
                      int64_t B, int64_t I, int64_t L, int64_t per_block, int64_t k, unsigned long long* cand,
                      int64_t per_row) {
  switch (int8_lane_bytes(B)) {
    case 4: return launch_topk_int8_rows<4, K>(ctx, blocks, rows, bias, xT, B, I, L, per_block, k, cand, per_row);
    case 8: return launch_topk_int8_rows<8, K>(ctx, blocks, rows, bias, xT, B, I, L, per_block, k, cand, per_row);
    default: return launch_topk_int8_rows<16, K>(ctx, blocks, rows, bias, xT, B, I, L, per_block, k, cand, per_row);
  }
}

template <int K>
void launch_topk(const Launch& ctx, const RowSparseDev& rows, const float* bias, const GatherInput& xT, int64_t B,
                 int64_t I, int64_t L, int64_t k, int64_t per_block, int64_t per_row, unsigned long long* cand,
                 unsigned long long* out) {
  if (L > 0) {
    if (xT.int8_scale)
      launch_topk_int8<K>(ctx, (unsigned)(per_row / k), rows, bias, xT, B, I, L, per_block, k, cand, per_row);
    else if (xT.bf16)
      launch_topk_scores<uint16_t, K>(ctx, (unsigned)(per_row / (2 * k)), rows, bias, static_cast<const uint16_t*>(xT.data), B, I, L, per_block, k, cand, per_row);
    else
      launch_topk_scores<float, K>(ctx, (unsigned)(per_row / (2 * k)), rows, bias, static_cast<const float*>(xT.data), B, I, L, per_block, k, cand, per_row);
  } else {
    check(cudaMemsetAsync(cand, 0, sizeof(unsigned long long) * B * per_row, ctx.stream), ctx.op, "cudaMemsetAsync");
  }
  topk_select_kernel<K><<<(unsigned)((B + kWarps - 1) / kWarps), kThreads, 0, ctx.stream>>>(ctx.status, cand, per_row, (int)B, (int)k, out);
  check_launch(ctx.op, "rowsparse topk_select_kernel");
}

}  // namespace

void rowsparse_topk(const Launch& ctx, const RowSparseDev& rows, const float* bias, GatherInput xT, int64_t B, int64_t I,
                    int64_t L, int64_t k, int multiprocessors, unsigned long long* cand, unsigned long long* out) {
  if (B <= 0) return;
  if (k < 1 || k > kMaxTopK) throw CudaFailure(std::string(ctx.op) + ": the fused top-k takes k in [1, 16]");
  check_dims(ctx, B, I);
  int64_t per_block = 0;
  const int64_t per_row = rowsparse_topk_candidates(L, k, multiprocessors, xT, B, &per_block);
  if (k <= 8)
    launch_topk<8>(ctx, rows, bias, xT, B, I, L, k, per_block, per_row, cand, out);
  else
    launch_topk<kMaxTopK>(ctx, rows, bias, xT, B, I, L, k, per_block, per_row, cand, out);
}

void check_csr_row_ptr(const Launch& ctx, const uint32_t* row_ptr, int64_t L, int64_t nnz) {
  csr_row_ptr_kernel<<<grid_for(L + 1, 256), 256, 0, ctx.stream>>>(ctx.status, row_ptr, L, nnz);
  check_launch(ctx.op, "csr_row_ptr_kernel");
}

}  // namespace xmc::cuda
