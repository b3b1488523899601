// The argument checks of denseForward(x, W, b, out) and denseBackward(x, W,
// dOut, dX?, dW, dB): shared by the CPU backend (native/cpu/dense.cc) and the
// CUDA launchers (native/cuda/dense_ops.cc), so both refuse the same inputs
// with the same messages. Each returns the problem's sizes.
#pragma once
#include <cstdint>
#include <optional>
#include <utility>

#include "op_args.h"

namespace xmc::common {

struct DenseDims {
  int64_t B, I, O;
};

// x [B, I], W [O, I], b [O], out [B, O]; out distinct from the inputs.
template <class Tensor>
DenseDims dense_forward_arguments(const OpArgs& call, const Tensor& x, const Tensor& W, const Tensor& b, const Tensor& out) {
  call.expect_dtype(x, "x", DType::Float32);
  call.expect_shape(x, "x", {-1, -1}, "[B, I]");
  const int64_t B = x.dim(0), I = x.dim(1);
  call.expect_dtype(W, "W", DType::Float32);
  call.expect_shape(W, "W", {-1, I}, "[O, I]");
  const int64_t O = W.dim(0);
  call.expect_dtype(b, "b", DType::Float32);
  call.expect_shape(b, "b", {O}, "[O]");
  call.expect_dtype(out, "out", DType::Float32);
  call.expect_shape(out, "out", {B, O}, "[B, O]");
  call.expect_distinct(out, "out", x, "x");
  call.expect_distinct(out, "out", W, "W");
  call.expect_distinct(out, "out", b, "b");
  return {B, I, O};
}

// x [B, I], W [O, I], dOut [B, O], dX [B, I] (optional), dW [O, I], dB [O]; outputs distinct from everything else.
template <class Tensor>
DenseDims dense_backward_arguments(const OpArgs& call, const Tensor& x, const Tensor& W, const Tensor& dOut,
                                   const std::optional<Tensor>& dX, const Tensor& dW, const Tensor& dB) {
  call.expect_dtype(x, "x", DType::Float32);
  call.expect_shape(x, "x", {-1, -1}, "[B, I]");
  const int64_t B = x.dim(0), I = x.dim(1);
  call.expect_dtype(W, "W", DType::Float32);
  call.expect_shape(W, "W", {-1, I}, "[O, I]");
  const int64_t O = W.dim(0);
  call.expect_dtype(dOut, "dOut", DType::Float32);
  call.expect_shape(dOut, "dOut", {B, O}, "[B, O]");
  if (dX) {
    call.expect_dtype(*dX, "dX", DType::Float32);
    call.expect_shape(*dX, "dX", {B, I}, "[B, I]");
    call.expect_distinct(*dX, "dX", x, "x");
    call.expect_distinct(*dX, "dX", W, "W");
    call.expect_distinct(*dX, "dX", dOut, "dOut");
  }
  call.expect_dtype(dW, "dW", DType::Float32);
  call.expect_shape(dW, "dW", {O, I}, "[O, I]");
  call.expect_dtype(dB, "dB", DType::Float32);
  call.expect_shape(dB, "dB", {O}, "[O]");
  for (auto [t, n] : {std::pair<const Tensor*, const char*>{&x, "x"}, {&W, "W"}, {&dOut, "dOut"}}) {
    call.expect_distinct(dW, "dW", *t, n);
    call.expect_distinct(dB, "dB", *t, n);
  }
  call.expect_distinct(dW, "dW", dB, "dB");
  if (dX) {
    call.expect_distinct(dW, "dW", *dX, "dX");
    call.expect_distinct(dB, "dB", *dX, "dX");
  }
  return {B, I, O};
}

}  // namespace xmc::common
