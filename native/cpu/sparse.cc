// Unstructured sparse output layer (the paper's "Unstructured" rows): the
// same budget of connections as FFI (nnz = L*k) at arbitrary positions of the
// L x I weight matrix, so rows have different sizes. Stored CSR by output row:
//
//   rowPtr[L+1]  connections of label l are e in [rowPtr[l], rowPtr[l+1])
//   col[nnz]     source input of connection e (< I; unique within a row)
//   W[nnz]       its weight
//
//   sparseForward(x[B,I], rowPtr, col, W, b[L], out[B,L])
//     out[b, l] = b[l] + sum_{e in row l} W[e] * x[b, col[e]]
//   sparseBackward(x, rowPtr, col, W, dOut[B,L], dX[B,I] | null, dW[nnz], dB[L])
//     dB[l] = sum_b dOut[b, l];  dW[e] = sum_b dOut[b, l] * x[b, col[e]]
//     dX[b, i] = sum_{e : col[e] = i} W[e] * dOut[b, row(e)]
//
// rowPtr and col are uint32 (int32 accepted). The CSR structure is checked
// when the op runs (rowPtr[0] = 0, non-decreasing, rowPtr[L] = nnz, col < I).
// The kernels are those of the FFI layer (rowsparse.h); the backward splits
// labels over threads by equal numbers of connections.
#include "rowsparse.h"
#include "common/layer_args.h"

namespace xmc::cpu {

std::pair<int64_t, int64_t> check_csr_layer(const OpCall& call, const Tensor& rowPtr, const Tensor& col, const Tensor& W,
                                            const Tensor* b, const char* b_name) {
  return common::csr_layer(call, rowPtr, col, W, b, b_name);
}

void validate_csr(ThreadPool& pool, const Tensor& rowPtr, int64_t L, const Tensor& col, int64_t nnz, int64_t I) {
  const uint32_t* rp = rowPtr.data<uint32_t>();
  if (rp[0] != 0) throw OpError("rowPtr[0] = " + index_text(rowPtr.dtype, rp[0]) + ", must be 0");
  for (int64_t l = 0; l < L; ++l)
    if (rp[l + 1] < rp[l])
      throw OpError("rowPtr is not non-decreasing: rowPtr[" + std::to_string(l) + "] = " + index_text(rowPtr.dtype, rp[l]) +
                    " > rowPtr[" + std::to_string(l + 1) + "] = " + index_text(rowPtr.dtype, rp[l + 1]));
  if (static_cast<int64_t>(rp[L]) != nnz)
    throw OpError("rowPtr[L = " + std::to_string(L) + "] = " + index_text(rowPtr.dtype, rp[L]) + " must equal nnz = " +
                  std::to_string(nnz));
  const int64_t bad = first_out_of_range(pool, col.data<uint32_t>(), nnz, static_cast<uint64_t>(I));
  if (bad >= 0)
    throw OpError("col[" + std::to_string(bad) + "] = " + index_text(col.dtype, col.data<uint32_t>()[bad]) +
                  " is not a valid source: it must be in [0, I = " + std::to_string(I) + ")");
}

namespace {

// sparseForward(backend, x, rowPtr, col, W, b, out)
Napi::Value SparseForward(const Napi::CallbackInfo& info) {
  OpCall call(info, "sparseForward");
  Tensor x = call.tensor(1, "x"), rowPtr = call.tensor(2, "rowPtr"), col = call.tensor(3, "col"), W = call.tensor(4, "W"),
         b = call.tensor(5, "b"), out = call.tensor(6, "out");
  const common::RowSparseDims d = common::csr_forward_arguments(call, x, rowPtr, col, W, b, out);
  const int64_t B = d.B, I = d.I, L = d.L, nnz = d.n;
  call.enqueue([pool = call.pool(), alloc = call.allocator(), x, rowPtr, col, W, b, out, B, I, L, nnz] {
    validate_csr(*pool, rowPtr, L, col, nnz, I);
    TransposedInput xT(*pool, alloc, x.data<float>(), B, I);
    RowSparse rows{rowPtr.data<uint32_t>(), 0, col.data<uint32_t>(), W.data<float>()};
    rowsparse_forward(*pool, alloc, rows, b.data<float>(), xT.data(), B, 0, L, out.data<float>(), L);
  });
  return info.Env().Undefined();
}

// sparseBackward(backend, x, rowPtr, col, W, dOut, dX | null, dW, dB)
Napi::Value SparseBackward(const Napi::CallbackInfo& info) {
  OpCall call(info, "sparseBackward");
  Tensor x = call.tensor(1, "x"), rowPtr = call.tensor(2, "rowPtr"), col = call.tensor(3, "col"), W = call.tensor(4, "W"),
         dOut = call.tensor(5, "dOut");
  std::optional<Tensor> dX = call.optional_tensor(6, "dX");
  Tensor dW = call.tensor(7, "dW"), dB = call.tensor(8, "dB");
  const common::RowSparseDims d = common::csr_backward_arguments(call, x, rowPtr, col, W, dOut, dX, dW, dB);
  const int64_t B = d.B, I = d.I, L = d.L, nnz = d.n;
  call.enqueue([pool = call.pool(), alloc = call.allocator(), x, rowPtr, col, W, dOut, dX, dW, dB, B, I, L, nnz] {
    validate_csr(*pool, rowPtr, L, col, nnz, I);
    TransposedInput xT(*pool, alloc, x.data<float>(), B, I);
    RowSparse rows{rowPtr.data<uint32_t>(), 0, col.data<uint32_t>(), W.data<float>()};
    rowsparse_backward(*pool, alloc, rows, L, I, xT.data(), B, dOut.data<float>(), dX ? dX->data<float>() : nullptr,
                       dW.data<float>(), dB.data<float>());
  });
  return info.Env().Undefined();
}

}  // namespace
}  // namespace xmc::cpu

namespace xmc {
void register_sparse(Napi::Env env, Napi::Object exports) {
  exports.Set("sparseForward", Napi::Function::New(env, cpu::SparseForward, "sparseForward"));
  exports.Set("sparseBackward", Napi::Function::New(env, cpu::SparseBackward, "sparseBackward"));
}
}  // namespace xmc
