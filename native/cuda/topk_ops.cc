// Launchers of the top-k ops (kernels and the ranking: topk.cu).
//
//   topK(scores[B,L], k, {labelOffset = 0})
//   denseTopK(x[B,I], W[L,I], b[L], k, {labelOffset = 0, chunk = 8192})
//   ffiTopK(x[B,I], W[L,k'], idx[L,k'], b[L], k, {labelOffset, chunk})
//   sparseTopK(x[B,I], rowPtr[L+1], col[nnz], W[nnz], b[L], k, {labelOffset, chunk})
//   -> Promise<{labels: Int32Array [B*k], scores: Float32Array [B*k]}>
//
// ffiTopK and sparseTopK with k <= 16 use the fused kernel of rowsparse.cu
// (scores of 64-label tiles and per-row candidates in registers; `chunk` is
// not used): device memory B * 2 * k * (about 4 blocks per multiprocessor)
// candidate keys. The other layer variants (and k > 16) compute `chunk` labels at a time into a [B, chunk]
// scratch block (the forward kernels of dense / FFI / CSR layers, same
// arithmetic as denseForward / ffiForward / sparseForward) and merge each
// block into the [B, k] candidates, never building [B, L]. Device memory:
// B * chunk floats + 2 * B * k candidate keys + the sort scratch.
// The result is copied to pinned memory and handed to JS when the promise
// settles; a failure of the op's own checks rejects it without the
// "reported by" suffix (as on the CPU).
#include <algorithm>
#include <cstring>

#include "backend.h"
#include "common/dense_args.h"

namespace xmc::cuda {
namespace {

using Keys = unsigned long long;

struct TopKPlan {
  int64_t B, L, k, offset, chunk;
};

// Parses k and the options (the CPU backend's ranges and messages).
TopKPlan plan_topk(const OpCall& call, int64_t B, int64_t L, size_t k_index, size_t opts_index) {
  TopKPlan p;
  p.B = B;
  p.L = L;
  p.k = static_cast<int64_t>(call.number(k_index, "k", 1, 1 << 20, true));
  Napi::Object opts = call.options(opts_index);
  p.offset = static_cast<int64_t>(call.option(opts, "labelOffset", 0.0, 0.0, 2147483647.0, true));
  p.chunk = static_cast<int64_t>(call.option(opts, "chunk", 8192.0, 1.0, 2147483647.0, true));
  if (p.offset + L > 2147483648LL)
    call.range_error("labelOffset + L = " + std::to_string(p.offset + L) + " does not fit the int32 labels");
  return p;
}

// Candidate buffers; `merge(block, ld, n, l0)` merges a [B, n] block of labels [l0, l0 + n).
class Candidates {
 public:
  Candidates(const OpCall& call, const TopKPlan& p) : call_(call), p_(p) {
    const size_t bytes = sizeof(Keys) * static_cast<size_t>(p.B * p.k);
    a_ = call.scratch(bytes);
    b_ = call.scratch(bytes);
    if (bytes) check(cudaMemsetAsync(a_->data(), 0, bytes, call.launch().stream), call.op(), "cudaMemsetAsync");
  }
  void merge(const float* block, int64_t ld, int64_t n, int64_t l0) {
    topk_merge(call_.launch(), block, ld, n, l0, static_cast<const Keys*>(a_->data()), static_cast<Keys*>(b_->data()), p_.B, p_.k);
    std::swap(a_, b_);
  }
  const Keys* current() const { return static_cast<const Keys*>(a_->data()); }

 private:
  const OpCall& call_;
  TopKPlan p_;
  std::shared_ptr<Buffer> a_, b_;
};

// Sorts the candidates, copies labels and scores to pinned memory and returns the promise.
Napi::Value finish_keys(const OpCall& call, const TopKPlan& p, const Keys* keys, uint32_t own_serial);
Napi::Value finish(const OpCall& call, const TopKPlan& p, const Candidates& cand, uint32_t own_serial) {
  return finish_keys(call, p, cand.current(), own_serial);
}

Napi::Value finish_keys(const OpCall& call, const TopKPlan& p, const Keys* keys, uint32_t own_serial) {
  const Launch ctx = call.launch();
  const size_t n = static_cast<size_t>(p.B * p.k);
  std::shared_ptr<Buffer> labels = call.scratch(sizeof(int32_t) * n), scores = call.scratch(sizeof(float) * n);
  std::shared_ptr<Buffer> sort = call.scratch(topk_finish_scratch_bytes(p.B, p.k));
  topk_finish(ctx, keys, p.B, p.k, p.offset, static_cast<int32_t*>(labels ? labels->data() : nullptr),
              static_cast<float*>(scores ? scores->data() : nullptr), sort ? sort->data() : nullptr);
  std::shared_ptr<void> staging;
  if (n) {
    staging = call.device().pinned().acquire(2 * sizeof(float) * n, call.op());
    check(cudaMemcpyAsync(staging.get(), labels->data(), sizeof(int32_t) * n, cudaMemcpyDeviceToHost, ctx.stream), call.op(),
          "cudaMemcpyAsync");
    check(cudaMemcpyAsync(static_cast<char*>(staging.get()) + sizeof(int32_t) * n, scores->data(), sizeof(float) * n,
                          cudaMemcpyDeviceToHost, ctx.stream),
          call.op(), "cudaMemcpyAsync");
  }
  return call.device().settle(
      call.env(), call.op(),
      [staging, n](Napi::Env e) -> Napi::Value {
        Napi::ArrayBuffer lab = Napi::ArrayBuffer::New(e, sizeof(int32_t) * n), sc = Napi::ArrayBuffer::New(e, sizeof(float) * n);
        if (n) {
          std::memcpy(lab.Data(), staging.get(), sizeof(int32_t) * n);
          std::memcpy(sc.Data(), static_cast<const char*>(staging.get()) + sizeof(int32_t) * n, sizeof(float) * n);
        }
        Napi::Object o = Napi::Object::New(e);
        o.Set("labels", Napi::Int32Array::New(e, n, lab, 0));
        o.Set("scores", Napi::Float32Array::New(e, n, sc, 0));
        return o;
      },
      own_serial, staging);
}

Napi::Value TopK(const Napi::CallbackInfo& info) {
  return guarded(info, "topK", [&]() -> Napi::Value {
    OpCall call(info, "topK");
    Tensor scores = call.tensor(1, "scores");
    call.expect_dtype(scores, "scores", DType::Float32);
    call.expect_shape(scores, "scores", {-1, -1}, "[B, L]");
    const TopKPlan p = plan_topk(call, scores.dim(0), scores.dim(1), 2, 3);
    Candidates cand(call, p);
    cand.merge(scores.data<float>(), p.L, p.L, 0);
    return finish(call, p, cand, 0);
  });
}

Napi::Value DenseTopK(const Napi::CallbackInfo& info) {
  return guarded(info, "denseTopK", [&]() -> Napi::Value {
    OpCall call(info, "denseTopK");
    Tensor x = call.tensor(1, "x"), W = call.tensor(2, "W"), b = call.tensor(3, "b");
    const common::DenseDims d = common::dense_topk_arguments(call, x, W, b);
    const int64_t B = d.B, I = d.I, L = d.O;
    const TopKPlan p = plan_topk(call, B, L, 4, 5);
    Candidates cand(call, p);
    const int64_t C = std::min(p.chunk, std::max<int64_t>(L, 1));
    std::shared_ptr<Buffer> block = call.scratch(sizeof(float) * B * C);
    for (int64_t l0 = 0; l0 < L; l0 += C) {
      const int64_t n = std::min(C, L - l0);
      float* s = static_cast<float*>(block->data());
      gemm(call, false, true, B, n, I, x.data<float>(), I, W.data<float>() + l0 * I, I, s, n);
      add_bias_rows(call.launch(), s, b.data<float>() + l0, B, n, n);
      cand.merge(s, n, n, l0);
    }
    return finish(call, p, cand, 0);
  });
}

// Chunks of a row-sparse layer (FFI or CSR), after its checks.
void rowsparse_chunks(const OpCall& call, const TopKPlan& p, Candidates& cand, const RowSparseDev& rows, const float* bias,
                      const Tensor& x, int64_t I) {
  TransposedInput xT = transposed_input(call, x, p.B, I);
  const int64_t C = std::min(p.chunk, std::max<int64_t>(p.L, 1));
  std::shared_ptr<Buffer> block = call.scratch(sizeof(float) * p.B * C);
  for (int64_t l0 = 0; l0 < p.L; l0 += C) {
    const int64_t n = std::min(C, p.L - l0);
    float* s = static_cast<float*>(block->data());
    rowsparse_forward(call.launch(), rows, bias, xT.data, p.B, I, l0, l0 + n, s, n);
    cand.merge(s, n, n, l0);
  }
}

// A row-sparse layer's top-k (FFI or CSR), after its checks: fused (no [B, chunk] scores) for k <= 16,
// else in chunks of labels merged into the candidates.
Napi::Value rowsparse_topk_op(const OpCall& call, const TopKPlan& p, const RowSparseDev& rows, const float* bias,
                              const Tensor& x, int64_t I, uint32_t serial, const CheckValues& values) {
  if (p.k <= kFusedTopKMaxK) {
    GatherScratch xT = topk_gather_input(call, x, p.B, I);
    int64_t per_block = 0;
    const int sms = call.device().multiprocessors();
    const int64_t per_row = rowsparse_topk_candidates(p.L, p.k, sms, xT.input, p.B, &per_block);
    std::shared_ptr<Buffer> cand = call.scratch(sizeof(Keys) * std::max<int64_t>(1, p.B * per_row));
    std::shared_ptr<Buffer> top = call.scratch(sizeof(Keys) * std::max<int64_t>(1, p.B * p.k));
    rowsparse_topk(call.launch(), rows, bias, xT.input, p.B, I, p.L, p.k, sms, static_cast<Keys*>(cand->data()),
                   static_cast<Keys*>(top->data()));
    finalize_checks(call.launch(), serial, values);
    return finish_keys(call, p, static_cast<const Keys*>(top->data()), serial);
  }
  Candidates cand(call, p);
  rowsparse_chunks(call, p, cand, rows, bias, x, I);
  finalize_checks(call.launch(), serial, values);
  return finish(call, p, cand, serial);
}

Napi::Value FfiTopK(const Napi::CallbackInfo& info) {
  return guarded(info, "ffiTopK", [&]() -> Napi::Value {
    OpCall call(info, "ffiTopK");
    Tensor x = call.tensor(1, "x"), W = call.tensor(2, "W"), idx = call.tensor(3, "idx"), b = call.tensor(4, "b");
    call.expect_dtype(x, "x", DType::Float32);
    call.expect_shape(x, "x", {-1, -1}, "[B, I]");
    const int64_t B = x.dim(0), I = x.dim(1);
    auto [L, fan_in] = check_ffi_layer(call, W, idx, &b);
    const TopKPlan p = plan_topk(call, B, L, 5, 6);
    const uint32_t serial = call.device().register_check(ffi_idx_formatter("ffiTopK", idx.dtype, fan_in, I));
    const RowSparseDev rows{nullptr, fan_in, idx.data<uint32_t>(), W.data<float>(), 1};
    CheckValues values;
    values.v0_src[0] = idx.data<uint32_t>();
    return rowsparse_topk_op(call, p, rows, b.data<float>(), x, I, serial, values);
  });
}

Napi::Value SparseTopK(const Napi::CallbackInfo& info) {
  return guarded(info, "sparseTopK", [&]() -> Napi::Value {
    OpCall call(info, "sparseTopK");
    Tensor x = call.tensor(1, "x"), rowPtr = call.tensor(2, "rowPtr"), col = call.tensor(3, "col"), W = call.tensor(4, "W"),
           b = call.tensor(5, "b");
    call.expect_dtype(x, "x", DType::Float32);
    call.expect_shape(x, "x", {-1, -1}, "[B, I]");
    const int64_t B = x.dim(0), I = x.dim(1);
    auto [L, nnz] = check_csr_layer(call, rowPtr, col, W, &b);
    const TopKPlan p = plan_topk(call, B, L, 6, 7);
    const uint32_t serial = call.device().register_check(csr_formatter("sparseTopK", rowPtr.dtype, col.dtype, L, nnz, I));
    const CheckValues values = csr_check_values(rowPtr, col);
    check_csr_row_ptr(call.launch(), rowPtr.data<uint32_t>(), L, nnz);
    finalize_checks(call.launch(), serial, values);
    const RowSparseDev rows{rowPtr.data<uint32_t>(), 0, col.data<uint32_t>(), W.data<float>(), 4};
    return rowsparse_topk_op(call, p, rows, b.data<float>(), x, I, serial, values);
  });
}

}  // namespace

void register_topk_ops(Napi::Env env, Napi::Object ops) {
  ops.Set("topK", Napi::Function::New(env, TopK, "topK"));
  ops.Set("denseTopK", Napi::Function::New(env, DenseTopK, "denseTopK"));
  ops.Set("ffiTopK", Napi::Function::New(env, FfiTopK, "ffiTopK"));
  ops.Set("sparseTopK", Napi::Function::New(env, SparseTopK, "sparseTopK"));
}

}  // namespace xmc::cuda
