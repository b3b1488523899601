// The host-side core of rewiring (prune and regrow), one implementation for
// both backends: the CPU backend runs it on the tensors' memory
// (native/cpu/rewire.cc), the CUDA backend on pinned host copies
// (native/cuda/rewire_ops.cc). Sharing it is what keeps the two backends'
// results bit-identical for the same inputs and seed. The contract (prune
// threshold, tie rule, regrowth, random streams) is in native/cpu/rewire.cc.
//
// Plain pointers in, arrays rewritten in place. The caller validates the
// structure first (sources < inputDim; a well-formed CSR) and supplies how
// rows are spread over threads and where scratch memory comes from, so the
// CPU backend keeps its thread pool and allocator accounting.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace xmc::common {

struct RewireHost {
  // Runs body(begin, end) over [0, n) in parts (grain: a hint of the smallest
  // useful part); returns when all parts are done. Results never depend on the split.
  std::function<void(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body)> parallel_for;
  // `bytes` of scratch memory, released when the last handle goes.
  std::function<std::shared_ptr<void>(size_t bytes)> scratch;
};

// 1 for the n connections with the smallest |W| (NaN smallest; ties at the
// threshold go to the lower flat index).
std::vector<uint8_t> select_pruned(const RewireHost& host, const float* W, int64_t count, int64_t n);

// FFI layer W/idx/m/v [L, k]: prunes n slots, regrows each in place with a
// fresh source of its row (W = m = v = 0). Requires every idx < input_dim and n >= 1.
void rewire_ffi(const RewireHost& host, int64_t L, int64_t k, int64_t input_dim, uint64_t seed, int64_t n, float* W,
                uint32_t* idx, float* m, float* v);

// CSR layer rowPtr[L+1], col/W/m/v [nnz]: prunes n entries, grows n distinct
// empty cells, rewrites the rows sorted by column. Requires a valid CSR with
// col < input_dim and n >= 1.
void rewire_csr(const RewireHost& host, int64_t L, int64_t nnz, int64_t input_dim, uint64_t seed, int64_t n,
                uint32_t* rowPtr, uint32_t* col, float* W, float* m, float* v);

}  // namespace xmc::common
