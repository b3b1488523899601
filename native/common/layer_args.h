// The argument checks that every layer op shares (dense, FFI and CSR layers,
// on the CPU backend and in the CUDA launchers), so that both backends refuse
// the same inputs with the same messages:
//
//   layer_input          x float32 [B, I]
//   layer_output         out float32 [B, L], distinct from x, W and b
//   ffi_layer            W float32 [L, k], idx index [L, k], b float32 [L] (optional)
//   csr_layer            rowPtr index [L + 1], col index [nnz], W float32 [nnz], b float32 [L] (optional)
//   gradient_outputs     dOut float32 [B, L], dX float32 [B, I] (optional), and the
//                        outputs dX, dW, dB distinct from the inputs and each other
//                        (dW's and dB's own shapes are the caller's)
#pragma once
#include <cstdint>
#include <optional>
#include <utility>

#include "op_args.h"

namespace xmc::common {

template <class Tensor>
std::pair<int64_t, int64_t> layer_input(const OpArgs& call, const Tensor& x) {
  call.expect_dtype(x, "x", DType::Float32);
  call.expect_shape(x, "x", {-1, -1}, "[B, I]");
  return {x.dim(0), x.dim(1)};
}

// `symbolic` names out's shape in messages ("[B, L]", "[B, O]").
template <class Tensor>
void layer_output(const OpArgs& call, const Tensor& out, int64_t B, int64_t L, const char* symbolic, const Tensor& x,
                  const Tensor& W, const Tensor& b) {
  call.expect_dtype(out, "out", DType::Float32);
  call.expect_shape(out, "out", {B, L}, symbolic);
  call.expect_distinct(out, "out", x, "x");
  call.expect_distinct(out, "out", W, "W");
  call.expect_distinct(out, "out", b, "b");
}

// Returns {L, k}.
template <class Tensor>
std::pair<int64_t, int64_t> ffi_layer(const OpArgs& call, const Tensor& W, const Tensor& idx, const Tensor* b) {
  call.expect_dtype(W, "W", DType::Float32);
  call.expect_shape(W, "W", {-1, -1}, "[L, k]");
  const int64_t L = W.dim(0), k = W.dim(1);
  call.expect_index_dtype(idx, "idx");
  call.expect_shape(idx, "idx", {L, k}, "[L, k]");
  if (b) {
    call.expect_dtype(*b, "b", DType::Float32);
    call.expect_shape(*b, "b", {L}, "[L]");
  }
  return {L, k};
}

// Returns {L, nnz}. L comes from b when given (named b_name in messages, e.g. "dB"), else from rowPtr.
template <class Tensor>
std::pair<int64_t, int64_t> csr_layer(const OpArgs& call, const Tensor& rowPtr, const Tensor& col, const Tensor& W,
                                      const Tensor* b, const char* b_name) {
  call.expect_index_dtype(rowPtr, "rowPtr");
  call.expect_shape(rowPtr, "rowPtr", {-1}, "[L + 1]");
  if (rowPtr.size < 1) call.range_error("argument rowPtr must have L + 1 >= 1 entries, got 0");
  int64_t L = rowPtr.size - 1;
  if (b) {
    call.expect_dtype(*b, b_name, DType::Float32);
    call.expect_shape(*b, b_name, {-1}, "[L]");
    L = b->dim(0);
    call.expect_shape(rowPtr, "rowPtr", {L + 1}, "[L + 1]");
  }
  call.expect_dtype(W, "W", DType::Float32);
  call.expect_shape(W, "W", {-1}, "[nnz]");
  const int64_t nnz = W.dim(0);
  if (nnz > 4294967295LL) call.range_error("argument W: nnz must be below 2^32");
  call.expect_index_dtype(col, "col");
  call.expect_shape(col, "col", {nnz}, "[nnz]");
  return {L, nnz};
}

// `out_symbolic` names dOut's shape ("[B, L]", "[B, O]").
template <class Tensor>
void gradient_outputs(const OpArgs& call, const Tensor& x, const Tensor& W, const Tensor& dOut,
                      const std::optional<Tensor>& dX, const Tensor& dW, const Tensor& dB, int64_t B, int64_t I,
                      int64_t L, const char* out_symbolic) {
  call.expect_dtype(dOut, "dOut", DType::Float32);
  call.expect_shape(dOut, "dOut", {B, L}, out_symbolic);
  if (dX) {
    call.expect_dtype(*dX, "dX", DType::Float32);
    call.expect_shape(*dX, "dX", {B, I}, "[B, I]");
    call.expect_distinct(*dX, "dX", x, "x");
    call.expect_distinct(*dX, "dX", W, "W");
    call.expect_distinct(*dX, "dX", dOut, "dOut");
  }
  for (auto [t, n] : {std::pair<const Tensor*, const char*>{&x, "x"}, {&W, "W"}, {&dOut, "dOut"}}) {
    call.expect_distinct(dW, "dW", *t, n);
    call.expect_distinct(dB, "dB", *t, n);
  }
  call.expect_distinct(dW, "dW", dB, "dB");
  if (dX) {
    call.expect_distinct(dW, "dW", *dX, "dX");
    call.expect_distinct(dB, "dB", *dX, "dX");
  }
}

// The whole argument checks of the row-sparse layer ops, {B, I, L, k or nnz}.
struct RowSparseDims {
  int64_t B, I, L, n;  // n: fan-in k (FFI) or nnz (CSR)
};

// ffiForward(x, W, idx, b, out)
template <class Tensor>
RowSparseDims ffi_forward_arguments(const OpArgs& call, const Tensor& x, const Tensor& W, const Tensor& idx, const Tensor& b,
                                    const Tensor& out) {
  const auto [B, I] = layer_input(call, x);
  const auto [L, k] = ffi_layer(call, W, idx, &b);
  layer_output(call, out, B, L, "[B, L]", x, W, b);
  return {B, I, L, k};
}

// ffiBackward(x, W, idx, dOut, dX | null, dW [L, k], dB [L])
template <class Tensor>
RowSparseDims ffi_backward_arguments(const OpArgs& call, const Tensor& x, const Tensor& W, const Tensor& idx,
                                     const Tensor& dOut, const std::optional<Tensor>& dX, const Tensor& dW, const Tensor& dB) {
  const auto [B, I] = layer_input(call, x);
  const auto [L, k] = ffi_layer(call, W, idx, static_cast<const Tensor*>(nullptr));
  call.expect_dtype(dW, "dW", DType::Float32);
  call.expect_shape(dW, "dW", {L, k}, "[L, k]");
  call.expect_dtype(dB, "dB", DType::Float32);
  call.expect_shape(dB, "dB", {L}, "[L]");
  gradient_outputs(call, x, W, dOut, dX, dW, dB, B, I, L, "[B, L]");
  return {B, I, L, k};
}

// sparseForward(x, rowPtr, col, W, b, out)
template <class Tensor>
RowSparseDims csr_forward_arguments(const OpArgs& call, const Tensor& x, const Tensor& rowPtr, const Tensor& col,
                                    const Tensor& W, const Tensor& b, const Tensor& out) {
  const auto [B, I] = layer_input(call, x);
  const auto [L, nnz] = csr_layer(call, rowPtr, col, W, &b, "b");
  layer_output(call, out, B, L, "[B, L]", x, W, b);
  return {B, I, L, nnz};
}

// sparseBackward(x, rowPtr, col, W, dOut, dX | null, dW [nnz], dB [L])
template <class Tensor>
RowSparseDims csr_backward_arguments(const OpArgs& call, const Tensor& x, const Tensor& rowPtr, const Tensor& col,
                                     const Tensor& W, const Tensor& dOut, const std::optional<Tensor>& dX,
                                     const Tensor& dW, const Tensor& dB) {
  const auto [B, I] = layer_input(call, x);
  const auto [L, nnz] = csr_layer(call, rowPtr, col, W, &dB, "dB");
  call.expect_dtype(dW, "dW", DType::Float32);
  call.expect_shape(dW, "dW", {nnz}, "[nnz]");
  gradient_outputs(call, x, W, dOut, dX, dW, dB, B, I, L, "[B, L]");
  return {B, I, L, nnz};
}

}  // namespace xmc::common
