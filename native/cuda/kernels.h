// The CUDA backend's kernel launchers: what the host side (backend.cc and the
// *_ops.cc files, compiled by the C++ compiler) may call in the *.cu files
// (compiled by nvcc). Plain C++ over device pointers and a stream; no N-API.
//
// Every launcher
//   - enqueues its kernels on `ctx.stream` and returns at once,
//   - checks the launch (cudaGetLastError) and throws CudaFailure naming the
//     op, the call and CUDA's message,
//   - skips launches with nothing to do (a grid of 0 blocks is an error in CUDA).
//
// Run-time failures (an index out of range, an invalid CSR structure...) are
// recorded on the device in the backend's DeviceStatus block (below): kernels
// that check data call record_failure(), a finalize kernel turns the first
// failure found into the status record, and every kernel of the backend
// starts with `if (status->code) return;` so that the ops enqueued after a
// failure are skipped until the next promise-bearing task reads and clears
// the status (see backend.h).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace xmc::cuda {

// A failed CUDA call: "<op>: <call> failed: <CUDA's message>".
struct CudaFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// cudaMalloc* found no memory: reported as a RangeError like the CPU's out-of-memory.
struct DeviceOutOfMemory : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws CudaFailure (DeviceOutOfMemory for cudaErrorMemoryAllocation) unless err is cudaSuccess.
void check(cudaError_t err, const char* op, const char* call);
// check(cudaGetLastError(), op, kernel) after a launch.
void check_launch(const char* op, const char* kernel);

// One per backend, in device memory (64 bytes). All fields 0: no failure.
struct DeviceStatus {
  uint32_t code;                  // rank of the failed check (op specific, 1..15); 0: none
  uint32_t serial;                // the failing op (CudaDevice::register_check)
  unsigned long long position;    // flat position of the first failure
  uint32_t v0, v1;                // the values found there (see CheckValues)
  unsigned long long candidate;   // ~((rank << 48) | position), atomicMax'ed by the running op; 0: none
  unsigned long long pad[4];
};
static_assert(sizeof(DeviceStatus) == 64, "DeviceStatus is one 64-byte block");

// What every launcher needs.
struct Launch {
  cudaStream_t stream;
  DeviceStatus* status;
  const char* op;  // for messages
};

// Where finalize_checks reads the values of the failure it reports: for the
// check of rank r (1-based), v0 = v0_src[r-1][position] and v1 = v1_src[r-1][position]
// (null: 0).
struct CheckValues {
  const uint32_t* v0_src[4] = {nullptr, nullptr, nullptr, nullptr};
  const uint32_t* v1_src[4] = {nullptr, nullptr, nullptr, nullptr};
};

// Turns the first failure recorded by the running op (if any, and if no op
// failed before) into the status record with this serial; clears the candidate.
void finalize_checks(const Launch& ctx, uint32_t serial, const CheckValues& values);

// --- elementwise.cu ---------------------------------------------------------
void fill_u32(const Launch& ctx, uint32_t* p, int64_t n, uint32_t bits);
void copy_u32(const Launch& ctx, const uint32_t* src, uint32_t* dst, int64_t n);
void relu_forward(const Launch& ctx, const float* x, float* out, int64_t n);
void relu_backward(const Launch& ctx, const float* out, const float* dOut, float* dX, int64_t n);
void dropout(const Launch& ctx, const float* x, float* out, int64_t n, float p, uint64_t seed);
// x [rows, cols] -> xT [cols, rows]; with relu, max(x, 0) (relu_forward's rule); with mask [cols, rows]
// (xT's layout), xT = mask > 0 ? x^T : 0 (relu_backward's rule).
void transpose(const Launch& ctx, const float* x, int64_t rows, int64_t cols, float* xT, bool relu = false,
               const float* mask = nullptr);
// The same, stored as bfloat16 bits (the upper half of the float32, rounded to nearest even).
void transpose_bf16(const Launch& ctx, const float* x, int64_t rows, int64_t cols, uint16_t* xT, bool relu = false);
// int8 inputs of the fused top-k (the int8TopK option): per-row scales s_b = max |x[b, :]| / 127, then
// xT [cols, ld] signed bytes = clamp(rint(x / s_b), -127, 127), padding columns 0.
void int8_row_scales(const Launch& ctx, const float* x, int64_t rows, int64_t cols, float* scale);
void transpose_int8(const Launch& ctx, const float* x, const float* scale, int64_t rows, int64_t cols, int64_t ld,
                    uint8_t* xT);

// --- dense.cu ---------------------------------------------------------------
// out[b, o] += bias[o] for out [B, O] with row stride ldo
void add_bias_rows(const Launch& ctx, float* out, const float* bias, int64_t B, int64_t O, int64_t ldo);
// dB[o] = sum_b g[b, o] for g [B, O] (summed in row order, like the CPU backend)
void column_sums(const Launch& ctx, const float* g, int64_t B, int64_t O, float* dB);
// Row-major C[M, N] = op(A)[M, K] op(B)[K, N] with our own tiled kernel (the
// fallback when cuBLAS is not built in; gemm.cc chooses).
void sgemm_fallback(const Launch& ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A,
                    int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc);

// --- rowsparse.cu (FFI and CSR layers) --------------------------------------
// A transposed layer input xT [I, B]: float32, or bfloat16 bits (the bf16Gathers option), or (top-k
// only, the int8TopK option) bytes xT [I, ld] from transpose_int8 with the row scales s_b.
struct GatherInput {
  const void* data;
  bool bf16;
  const float* int8_scale = nullptr;  // non-null: int8 bytes, scale[b] = s_b
  int64_t ld = 0;                     // int8: row stride of xT in bytes (a multiple of 16, >= B)
};
struct RowSparseDev {
  const uint32_t* row_ptr;  // [L+1], or null for fixed fan-in
  int64_t fan_in;           // k when row_ptr is null
  const uint32_t* src;      // [nnz] sources (< I, checked by the kernels: rank `src_rank`)
  const float* weight;      // [nnz]
  uint32_t src_rank;        // check rank reported for a source >= I
};
// out[b * ldo + (l - l0)] = bias[l] + sum_e W[e] xT[src[e], b] for l in [l0, l1); bias may be null.
void rowsparse_forward(const Launch& ctx, const RowSparseDev& rows, const float* bias, const float* xT, int64_t B,
                       int64_t I, int64_t l0, int64_t l1, float* out, int64_t ldo);
// dB, dW overwritten; dXT [I, B] (may be null) must be zero and receives the scatter (atomics).
void rowsparse_backward(const Launch& ctx, const RowSparseDev& rows, int64_t L, int64_t I, const float* xT, int64_t B,
                        const float* dOut, float* dXT, float* dW, float* dB);
// The fused loss of rowsparse_loss_backward: targets as a bitmap (label_bitmap), the loss kind and scale,
// and where each block's loss sum goes (double [rowsparse_loss_backward_blocks(L)]).
struct FusedLossDev {
  const uint32_t* bits;  // [ceil(L / 32), B], word-major: bit l % 32 of bits[(l / 32) * B + b] is y[b, l]
  bool bce;
  float scale;           // 1 / (B * normaliser)
  double* partial;
};
// Blocks of the fused loss kernel (each writes one partial loss): a few waves of the GPU's multiprocessors,
// fewer for a small L; each warp then takes labels warp, warp + 8 blocks, ...
int64_t rowsparse_loss_backward_blocks(int64_t L, int multiprocessors);
// Scores (forward + bias), loss and gradient per (b, l) in registers, then the backward from that gradient:
// dB, dW overwritten; dXT [I, B] (may be null) must be zero and receives the scatter. [B, L] is never stored.
void rowsparse_loss_backward(const Launch& ctx, const RowSparseDev& rows, const float* bias, int64_t L, int64_t I,
                             GatherInput xT, int64_t B, const FusedLossDev& loss, int64_t blocks, float* dXT, float* dW,
                             float* dB);
// Fused top-k of a row-sparse layer's output, k in [1, kMaxTopK = 16]: scores of label tiles and per-row
// candidates in one kernel (no [B, chunk] scores), then the top k per row into out [B, k] (keys as in topk.cu,
// labels local: 0..L-1). cand needs B * rowsparse_topk_candidates(...) keys (the same L, k, xT and B).
int64_t rowsparse_topk_candidates(int64_t L, int64_t k, int multiprocessors, const GatherInput& xT, int64_t B,
                                  int64_t* per_block);
void rowsparse_topk(const Launch& ctx, const RowSparseDev& rows, const float* bias, GatherInput xT, int64_t B, int64_t I,
                    int64_t L, int64_t k, int multiprocessors, unsigned long long* cand, unsigned long long* out);
constexpr int64_t kFusedTopKMaxK = 16;
// rowPtr checks, ranks 1 (rowPtr[0] != 0), 2 (rowPtr[l+1] < rowPtr[l]), 3 (rowPtr[L] != nnz).
void check_csr_row_ptr(const Launch& ctx, const uint32_t* row_ptr, int64_t L, int64_t nnz);

// --- loss.cu -----------------------------------------------------------------
// labelPtr checks, ranks 1 (labelPtr[0] != 0), 2 (labelPtr[b+1] < labelPtr[b]), 3 (labelPtr[B] > nids).
void check_label_ptr(const Launch& ctx, const uint32_t* label_ptr, int64_t B, int64_t nids);
struct LossArgs {
  bool bce;
  const float* scores;  // [B, L]
  float* d;             // [B, L] or null; may be scores
  const uint32_t* label_ptr;
  const uint32_t* label_ids;
  int64_t nids, B, L, offset;
  double inv;  // 1 / (B * normaliser), 0 when B = 0
  float* loss;  // [1]
};
// Scratch the loss needs (bytes), given B, L and nids.
size_t loss_scratch_bytes(int64_t B, int64_t L, int64_t nids);
void loss_forward(const Launch& ctx, const LossArgs& a, void* scratch);
// bits [ceil(L / 32), B] (word-major, must be zero) |= y of the batch's labels: bit (id - offset) % 32 of
// bits[((id - offset) / 32) * B + b] for every id of row b in [offset, offset + L). Word-major so that the fused
// loss kernel reads a label's words for a run of rows as one coalesced load. Run after check_label_ptr.
void label_bitmap(const Launch& ctx, const uint32_t* label_ptr, const uint32_t* label_ids, int64_t B, int64_t nids,
                  int64_t offset, int64_t L, uint32_t* bits);
// loss[0] = inv * (sum of partial[0..n)), summed in a fixed order.
void loss_reduce(const Launch& ctx, const double* partial, int64_t n, double inv, float* loss);

// --- adam.cu -------------------------------------------------------------------
struct AdamCoefficients {
  float b1, one_minus_b1, b2, one_minus_b2, step_size, inv_sqrt_bc2, eps;
};
void adam(const Launch& ctx, float* p, const float* g, float* m, float* v, int64_t n, const AdamCoefficients& c);

// --- topk.cu -------------------------------------------------------------------
// Candidates are 64-bit keys (score order-preserving in the high half, 2^32-1-label in the low
// half; 0 = empty), [B, k] per buffer.
// cand_out = top k of (cand_in's k keys, the n scores of rows scores[b * ld + c], labels label_base + c).
void topk_merge(const Launch& ctx, const float* scores, int64_t ld, int64_t n, int64_t label_base,
                const unsigned long long* cand_in, unsigned long long* cand_out, int64_t B, int64_t k);
// Bytes of scratch topk_finish needs.
size_t topk_finish_scratch_bytes(int64_t B, int64_t k);
// Sorts each row's candidates (best first) into labels (offset + label, -1 for empty) and scores.
void topk_finish(const Launch& ctx, const unsigned long long* cand, int64_t B, int64_t k, int64_t offset,
                 int32_t* labels, float* scores, void* scratch);

// Rewiring of an FFI layer on the device (rewire.cu): the host core's results, bit for bit.
// rewire_ffi_on_device(k, I): whether the device path takes this layer (else the host path must).
bool rewire_ffi_on_device(int64_t k, int64_t I);
size_t rewire_ffi_scratch_bytes(int64_t L);
// Records idx[e] >= I as failure rank 1 at position e (for finalize_checks with v0 = idx).
void check_ffi_sources(const Launch& ctx, const uint32_t* idx, int64_t count, int64_t I);
// Prunes n >= 1 of W [L, k] and regrows them in idx / W / m / v; scratch: rewire_ffi_scratch_bytes(L).
void rewire_ffi_device(const Launch& ctx, float* W, uint32_t* idx, float* m, float* v, int64_t L, int64_t k, int64_t I,
                       uint64_t seed, int64_t n, void* scratch);

}  // namespace xmc::cuda
