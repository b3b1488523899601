// Rewiring of an FFI layer on the device (prune and regrow), bit-identical to
// the host core (native/common/rewire_core.cc, contract in native/cpu/rewire.cc):
//
//   W, idx, m, v   [L, k] row-major (idx: sources < I, checked first)
//   prune          the n connections with the smallest |W| (NaN smallest; ties
//                  at the threshold go to the lower flat index)
//   regrow         each pruned slot (l, j), in order of j, draws uniformly among
//                  the sources not used by row l's live connections, from the
//                  splitmix64 stream mix64(seed) ^ mix64(l + 1) (rejection); the
//                  new connection gets W = m = v = 0
//
// How:
//   1. keys: key(w) = 0 for NaN, else bits(|w|) + 1, an unsigned order equal
//      to the host's order of |w| with NaN below everything;
//   2. the n-th smallest key T by radix select: four passes of an 8-bit
//      histogram over the keys that share the digits found so far
//      (histogram_kernel) and a one-thread pick of the digit (pick_kernel);
//      the picks also count the keys below T, so ties = n - below;
//   3. ties in flat order: rows are taken in blocks of kRowsPerBlock; one
//      kernel counts each block's keys equal to T, one thread turns the counts
//      into exclusive offsets (the block's first tie rank);
//   4. regrow_kernel: a warp per row (slots j = lane + 32 q, q < kMaxSlots),
//      a slot is pruned if key < T, or key == T and its tie rank < ties; every
//      lane runs the row's generator in step (same draws, no broadcast) and
//      a draw is rejected when any lane holds it among the live sources.
// Memory: the keys are recomputed from W in each pass (no [L, k] scratch);
// scratch is 256 counters, the select state and one counter per block of rows.
// Rows with more than 256 connections, or a layer where a row could hold over
// 3/4 of the inputs (the host then draws from an explicit list of the free
// sources), stay on the host path (rewire_ffi_on_device says which).
#include <string>

#include "common.cuh"

namespace xmc::cuda {
namespace {

constexpr int kThreadsR = 256;
constexpr int kRowsPerBlock = 256;  // rows per tie-ranking block (regrow_kernel: 8 warps x 32 rows)
constexpr int kMaxSlots = 8;        // slots per lane: fan-in up to 256

struct SelectState {
  uint32_t prefix;     // digits of T found so far (high first)
  uint32_t pad;
  int64_t rank;        // rank of T among the keys that share the prefix (0-based)
  int64_t below;       // keys < T found so far
};

__device__ __forceinline__ uint32_t prune_key(float w) {
  return isnan(w) ? 0u : __float_as_uint(fabsf(w)) + 1u;
}

__global__ void select_init_kernel(const DeviceStatus* st, SelectState* state, int64_t n, unsigned long long* hist) {
  XMC_RETURN_IF_FAILED(st);
  if (threadIdx.x == 0) *state = SelectState{0u, 0u, n - 1, 0};
  for (int d = threadIdx.x; d < 256; d += blockDim.x) hist[d] = 0;
}

__global__ void check_sources_kernel(DeviceStatus* st, const uint32_t* idx, int64_t count, uint32_t I) {
  XMC_RETURN_IF_FAILED(st);
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < count; e += (int64_t)gridDim.x * blockDim.x)
    if (idx[e] >= I) record_failure(st, 1, static_cast<unsigned long long>(e));
}

// Pass p (0..3) counts digit p (bits 31-8p .. 24-8p) of the keys whose higher digits equal the prefix.
__global__ void histogram_kernel(const DeviceStatus* st, const float* W, int64_t count, const SelectState* state, int pass,
                                 unsigned long long* hist) {
  XMC_RETURN_IF_FAILED(st);
  __shared__ unsigned int local[256];
  for (int i = threadIdx.x; i < 256; i += blockDim.x) local[i] = 0;
  __syncthreads();
  const int shift = 24 - 8 * pass;
  const uint32_t prefix = state->prefix;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count; i += (int64_t)gridDim.x * blockDim.x) {
    const uint32_t key = prune_key(W[i]);
    if (pass == 0 || (key >> (shift + 8)) == (prefix >> (shift + 8))) atomicAdd(&local[(key >> shift) & 255u], 1u);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < 256; i += blockDim.x)
    if (local[i]) atomicAdd(&hist[i], static_cast<unsigned long long>(local[i]));
}

// One thread: the digit of pass p that holds rank; the counts below it join `below`; the histogram is cleared.
__global__ void pick_kernel(const DeviceStatus* st, SelectState* state, int pass, unsigned long long* hist) {
  XMC_RETURN_IF_FAILED(st);
  const int shift = 24 - 8 * pass;
  int64_t cum = 0;
  for (int d = 0; d < 256; ++d) {
    const int64_t c = static_cast<int64_t>(hist[d]);
    if (cum + c > state->rank) {
      state->prefix |= static_cast<uint32_t>(d) << shift;
      state->rank -= cum;
      state->below += cum;
      break;
    }
    cum += c;
  }
  for (int d = 0; d < 256; ++d) hist[d] = 0;
}

// Per block of kRowsPerBlock rows: the number of keys equal to T.
__global__ void tie_count_kernel(const DeviceStatus* st, const float* W, int64_t L, int64_t k, const SelectState* state,
                                 unsigned long long* block_ties) {
  XMC_RETURN_IF_FAILED(st);
  const uint32_t T = state->prefix;
  const int64_t e0 = (int64_t)blockIdx.x * kRowsPerBlock * k, e1 = min64(L, ((int64_t)blockIdx.x + 1) * kRowsPerBlock) * k;
  unsigned int n = 0;
  for (int64_t e = e0 + threadIdx.x; e < e1; e += blockDim.x) n += prune_key(W[e]) == T;
  __shared__ unsigned int sum;
  if (threadIdx.x == 0) sum = 0;
  __syncthreads();
  atomicAdd(&sum, n);
  __syncthreads();
  if (threadIdx.x == 0) block_ties[blockIdx.x] = sum;
}

// One thread: block_ties becomes exclusive offsets (the first tie rank of each block).
__global__ void tie_offsets_kernel(const DeviceStatus* st, unsigned long long* block_ties, int64_t blocks) {
  XMC_RETURN_IF_FAILED(st);
  unsigned long long run = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    const unsigned long long c = block_ties[b];
    block_ties[b] = run;
    run += c;
  }
}

// A block of 8 warps takes kRowsPerBlock rows, a warp 32 consecutive rows one after the other.
__global__ __launch_bounds__(kThreadsR) void regrow_kernel(const DeviceStatus* st, float* W, uint32_t* idx, float* m, float* v,
                                                           int64_t L, int k, uint32_t I, uint64_t seed, int64_t n,
                                                           const SelectState* state, const unsigned long long* block_ties) {
  XMC_RETURN_IF_FAILED(st);
  __shared__ unsigned long long row_tie_base[kRowsPerBlock];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const uint32_t T = state->prefix;
  const int64_t ties = n - state->below;  // how many keys equal to T are pruned (>= 1)
  const int64_t r0 = (int64_t)blockIdx.x * kRowsPerBlock;
  const int rows = (int)min64(kRowsPerBlock, L - r0);
  // Ties per row, then each row's first tie rank (rows in order).
  for (int r = warp; r < kRowsPerBlock; r += kThreadsR / 32) {
    unsigned int c = 0;
    if (r < rows)
      for (int j = lane; j < k; j += 32) c += prune_key(W[(r0 + r) * k + j]) == T;
    for (int o = 16; o > 0; o >>= 1) c += __shfl_xor_sync(kFullMask, c, o);  // (__reduce_add_sync needs sm_80)
    if (lane == 0) row_tie_base[r] = c;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned long long run = block_ties[blockIdx.x];
    for (int r = 0; r < kRowsPerBlock; ++r) {
      const unsigned long long c = row_tie_base[r];
      row_tie_base[r] = run;
      run += c;
    }
  }
  __syncthreads();
  const uint64_t row_seed = mix64(seed);
  for (int r = warp * 32; r < min(rows, warp * 32 + 32); ++r) {
    const int64_t l = r0 + r, base = l * k;
    uint32_t src[kMaxSlots];
    bool live[kMaxSlots], pruned[kMaxSlots];
    unsigned long long tie = row_tie_base[r];
    int npruned = 0;
#pragma unroll
    for (int q = 0; q < kMaxSlots; ++q) {
      const int j = lane + 32 * q;
      const bool slot = q * 32 < k && j < k;
      const uint32_t key = slot ? prune_key(W[base + j]) : ~0u;
      src[q] = slot ? idx[base + j] : 0u;
      // Tie rank of this slot: the row's first rank plus the equal keys at lower j.
      const unsigned eq = __ballot_sync(kFullMask, slot && key == T);
      const bool is_tie = slot && key == T;
      const unsigned long long my_rank = tie + __popc(eq & ((1u << lane) - 1u));
      tie += __popc(eq);
      pruned[q] = slot && (key < T || (is_tie && static_cast<int64_t>(my_rank) < ties));
      live[q] = slot && !pruned[q];
      npruned += __popc(__ballot_sync(kFullMask, pruned[q]));
    }
    if (npruned == 0) continue;
    SplitMix rng(row_seed ^ mix64(static_cast<uint64_t>(l) + 1));
#pragma unroll
    for (int q = 0; q < kMaxSlots; ++q) {
      if (q * 32 >= k) break;
      for (unsigned todo = __ballot_sync(kFullMask, pruned[q]); todo != 0; todo &= todo - 1) {
        const int t = __ffs(todo) - 1;
        uint32_t s;
        bool taken;
        do {  // every lane draws the same s
          s = static_cast<uint32_t>(rng.below(I));
          bool mine = false;
#pragma unroll
          for (int p = 0; p < kMaxSlots; ++p) mine |= live[p] && src[p] == s;
          taken = __any_sync(kFullMask, mine);
        } while (taken);
        if (lane == t) {
          src[q] = s;
          live[q] = true;
        }
      }
      if (pruned[q]) {
        const int64_t e = base + lane + 32 * q;
        idx[e] = src[q];
        W[e] = 0.0f;
        m[e] = 0.0f;
        v[e] = 0.0f;
      }
    }
  }
}

}  // namespace

bool rewire_ffi_on_device(int64_t k, int64_t I) {
  // The host draws from an explicit list of free sources when a row uses over 3/4 of the inputs
  // ((I - used) * 4 < I, used <= k - 1 before the first draw): such layers stay on the host.
  return k >= 1 && k <= 32 * kMaxSlots && (I - (k - 1)) * 4 >= I;
}

size_t rewire_ffi_scratch_bytes(int64_t L) {
  const int64_t blocks = (L + kRowsPerBlock - 1) / kRowsPerBlock;
  return sizeof(SelectState) + sizeof(unsigned long long) * (256 + blocks);
}

void check_ffi_sources(const Launch& ctx, const uint32_t* idx, int64_t count, int64_t I) {
  if (count <= 0) return;
  check_sources_kernel<<<grid_for(count, kThreadsR), kThreadsR, 0, ctx.stream>>>(ctx.status, idx, count, (uint32_t)I);
  check_launch(ctx.op, "check_sources_kernel");
}

void rewire_ffi_device(const Launch& ctx, float* W, uint32_t* idx, float* m, float* v, int64_t L, int64_t k, int64_t I,
                       uint64_t seed, int64_t n, void* scratch) {
  if (n <= 0 || L <= 0) return;
  if (!rewire_ffi_on_device(k, I) || I > 4294967295LL)
    throw CudaFailure(std::string(ctx.op) + ": this layer's rewiring runs on the host (rewire_ffi_on_device)");
  const int64_t count = L * k, blocks = (L + kRowsPerBlock - 1) / kRowsPerBlock;
  if (blocks > 2147483647) throw CudaFailure(std::string(ctx.op) + ": too many labels");
  auto* state = static_cast<SelectState*>(scratch);
  auto* hist = reinterpret_cast<unsigned long long*>(state + 1);
  unsigned long long* block_ties = hist + 256;
  select_init_kernel<<<1, 256, 0, ctx.stream>>>(ctx.status, state, n, hist);
  check_launch(ctx.op, "select_init_kernel");
  const unsigned grid = grid_for(count, kThreadsR);
  for (int pass = 0; pass < 4; ++pass) {
    histogram_kernel<<<grid, kThreadsR, 0, ctx.stream>>>(ctx.status, W, count, state, pass, hist);
    check_launch(ctx.op, "histogram_kernel");
    pick_kernel<<<1, 1, 0, ctx.stream>>>(ctx.status, state, pass, hist);
    check_launch(ctx.op, "pick_kernel");
  }
  tie_count_kernel<<<(unsigned)blocks, kThreadsR, 0, ctx.stream>>>(ctx.status, W, L, k, state, block_ties);
  check_launch(ctx.op, "tie_count_kernel");
  tie_offsets_kernel<<<1, 1, 0, ctx.stream>>>(ctx.status, block_ties, blocks);
  check_launch(ctx.op, "tie_offsets_kernel");
  regrow_kernel<<<(unsigned)blocks, kThreadsR, 0, ctx.stream>>>(ctx.status, W, idx, m, v, L, (int)k, (uint32_t)I, seed, n,
                                                              state, block_ties);
  check_launch(ctx.op, "regrow_kernel");
}

}  // namespace xmc::cuda
