// Row-sparse output layers: the kernels that the FFI layer (ffi.cc), the
// unstructured CSR layer (sparse.cc) and their top-k (topk.cc) share.
//
// A row-sparse layer with L outputs (labels) over I inputs stores, for each
// output row l, its connections e in [begin(l), end(l)): a weight W[e] and a
// source (input index) src[e] < I.
//
//   fixed fan-in (FFI):  begin(l) = l*k, W and src are [L, k] row-major
//   CSR (unstructured):  begin(l) = rowPtr[l], W and src (= col) are [nnz]
//
//   forward   out[b, l]  = bias[l] + sum_{e in row l} W[e] * x[b, src[e]]
//   backward  dB[l]      = sum_b dOut[b, l]
//             dW[e]      = sum_b dOut[b, l] * x[b, src[e]]        (e in row l)
//             dX[b, i]   = sum_{e : src[e] = i} W[e] * dOut[b, row(e)]
//
// Layout: the public x is [B, I] row-major; the kernels read a transposed
// copy xT [I, B] (built per op in scratch memory) so that gathering source i
// for all B rows is one contiguous run of B floats, as the paper's kernels do.
// The forward computes a tile of 64 labels x B in L1, then stores
// it into out [B, L] (stride L). The backward loads dOut for a tile of labels
// transposed (gT [64, B], prefetching the next tile) and does, per connection, one dot product (dW) and
// one axpy into dX.
//
// Races: labels are split across threads in contiguous ranges, so dW and dB
// (owned by one label) have a single writer. The dX scatter is not: several
// labels share a source. Each thread scatters into its own partial buffer
// dXT_p [I, B], and the partials are summed (in a fixed order) and
// transposed into dX afterwards. With a fixed thread count the result is
// deterministic. The number of partial buffers is capped so that they take at
// most kPartialBudgetBytes; fewer buffers means fewer threads for the scatter.
#pragma once
#include "backend.h"
#include "loss_math.h"

namespace xmc::cpu {

struct RowSparse {
  const uint32_t* row_ptr = nullptr;  // [L+1], or nullptr for fixed fan-in
  int64_t fan_in = 0;                 // k when row_ptr == nullptr
  const uint32_t* src = nullptr;      // [nnz]
  const float* weight = nullptr;      // [nnz]
  int64_t begin(int64_t l) const { return row_ptr ? static_cast<int64_t>(row_ptr[l]) : l * fan_in; }
  int64_t end(int64_t l) const { return row_ptr ? static_cast<int64_t>(row_ptr[l + 1]) : (l + 1) * fan_in; }
};

constexpr int64_t kLabelTile = 64;
constexpr size_t kPartialBudgetBytes = size_t(256) << 20;

// out[b * ldo + (l - l0)] for labels l in [l0, l1), every b < B. bias may be null.
void rowsparse_forward(ThreadPool& pool, const std::shared_ptr<Allocator>& alloc, const RowSparse& rows,
                       const float* bias, const float* xT, int64_t B, int64_t l0, int64_t l1, float* out, int64_t ldo);

// dOut is [B, L]. dX [B, I] may be null (first layer). dW [nnz], dB [L] are overwritten.
void rowsparse_backward(ThreadPool& pool, const std::shared_ptr<Allocator>& alloc, const RowSparse& rows, int64_t L,
                        int64_t I, const float* xT, int64_t B, const float* dOut, float* dX, float* dW, float* dB);

// The positives (y[b, l] = 1) of a batch within one label shard, sorted by
// (local label, row), duplicates removed: what the fused loss needs per label.
struct LabelPositives {
  std::vector<uint32_t> label;       // local label (id - offset, in [0, L))
  std::vector<uint32_t> row;         // batch row
  mutable std::vector<float> saved;  // scratch: the score at each positive (one writer per label)

  // From a batch CSR (labelPtr already validated); ids outside [offset, offset + L) are skipped.
  static LabelPositives build(const uint32_t* lp, const uint32_t* ids, int64_t B, int64_t offset, int64_t L);
  // [first, last) of label l's positives.
  std::pair<int64_t, int64_t> of(int64_t l) const {
    const auto r = std::equal_range(label.begin(), label.end(), static_cast<uint32_t>(l));
    return {r.first - label.begin(), r.second - label.begin()};
  }
};

// The fused FFI/CSR output layer with its loss, without the [B, L] scores:
// per tile of labels the scores (forward, + bias), the loss and its gradient
// dLoss/dOut (as lossForward computes them, scaled by `scale`), then the
// backward from that gradient. dX [B, I] may be null; dW, dB are overwritten.
// Returns the loss summed over (b, l), unscaled. The gradients equal those of
// rowsparse_forward + lossForward + rowsparse_backward bit for bit.
double rowsparse_loss_backward(ThreadPool& pool, const std::shared_ptr<Allocator>& alloc, const RowSparse& rows,
                               const float* bias, int64_t L, int64_t I, const float* xT, int64_t B,
                               const LabelPositives& positives, LossKind kind, float scale, float* dX, float* dW,
                               float* dB);

// Position of the first v[e] >= limit in v[0, n), or -1 when all are below.
int64_t first_out_of_range(ThreadPool& pool, const uint32_t* v, int64_t n, uint64_t limit);

// --- launcher helpers shared by ffi.cc, sparse.cc, rewire.cc and topk.cc ---

// "5000" for uint32, "-3" for an int32 index tensor holding a negative value.
std::string index_text(DType dtype, uint32_t bits);

// Checks W [L, k] float32, idx [L, k] index, b [L] float32 (b may be absent); returns {L, k}.
std::pair<int64_t, int64_t> check_ffi_layer(const OpCall& call, const Tensor& W, const Tensor& idx, const Tensor* b);
// Run time: every idx < I, else OpError naming the entry.
void validate_ffi_idx(ThreadPool& pool, const Tensor& idx, int64_t k, int64_t I);

// Checks rowPtr [L+1] index, col [nnz] index, W [nnz] float32, b [L] float32; returns {L, nnz}.
// L comes from b when given, otherwise from rowPtr.
// b_name names the [L] tensor in messages (e.g. "dB" in the backward).
std::pair<int64_t, int64_t> check_csr_layer(const OpCall& call, const Tensor& rowPtr, const Tensor& col, const Tensor& W,
                                            const Tensor* b, const char* b_name = "b");
// Run time: rowPtr[0] = 0, non-decreasing, rowPtr[L] = nnz, every col < I; else OpError.
void validate_csr(ThreadPool& pool, const Tensor& rowPtr, int64_t L, const Tensor& col, int64_t nnz, int64_t I);

// xT [I, B] for x [B, I]: a scratch copy (the same memory as x when B == 1).
class TransposedInput {
 public:
  TransposedInput(ThreadPool& pool, const std::shared_ptr<Allocator>& alloc, const float* x, int64_t B, int64_t I);
  const float* data() const { return data_; }

 private:
  std::optional<Scratch> scratch_;
  const float* data_;
};

}  // namespace xmc::cpu
