// The argument checks of denseForward(x, W, b, out) and denseBackward(x, W,
// dOut, dX?, dW, dB): shared by the CPU backend (native/cpu/dense.cc) and the
// CUDA launchers (native/cuda/dense_ops.cc), so both refuse the same inputs
// with the same messages. Each returns the problem's sizes.
#pragma once
#include <cstdint>
#include <optional>
#include <utility>

#include "layer_args.h"
#include "op_args.h"

namespace xmc::common {

struct DenseDims {
  int64_t B, I, O;
};

// W float32 [O, I]; returns O.
template <class Tensor>
int64_t dense_weight(const OpArgs& call, const Tensor& W, int64_t I) {
  call.expect_dtype(W, "W", DType::Float32);
  call.expect_shape(W, "W", {-1, I}, "[O, I]");
  return W.dim(0);
}

// x [B, I], W [O, I], b [O], out [B, O]; out distinct from the inputs.
template <class Tensor>
DenseDims dense_forward_arguments(const OpArgs& call, const Tensor& x, const Tensor& W, const Tensor& b, const Tensor& out) {
  const auto [B, I] = layer_input(call, x);
  const int64_t O = dense_weight(call, W, I);
  call.expect_dtype(b, "b", DType::Float32);
  call.expect_shape(b, "b", {O}, "[O]");
  layer_output(call, out, B, O, "[B, O]", x, W, b);
  return {B, I, O};
}

// x [B, I], W [O, I], dOut [B, O], dX [B, I] (optional), dW [O, I], dB [O]; outputs distinct from everything else.
template <class Tensor>
DenseDims dense_backward_arguments(const OpArgs& call, const Tensor& x, const Tensor& W, const Tensor& dOut,
                                   const std::optional<Tensor>& dX, const Tensor& dW, const Tensor& dB) {
  const auto [B, I] = layer_input(call, x);
  const int64_t O = dense_weight(call, W, I);
  call.expect_dtype(dW, "dW", DType::Float32);
  call.expect_shape(dW, "dW", {O, I}, "[O, I]");
  call.expect_dtype(dB, "dB", DType::Float32);
  call.expect_shape(dB, "dB", {O}, "[O]");
  gradient_outputs(call, x, W, dOut, dX, dW, dB, B, I, O, "[B, O]");
  return {B, I, O};
}

// denseTopK(x [B, I], W [L, I], b [L], ...): the layer's checks, with its labels named L.
template <class Tensor>
DenseDims dense_topk_arguments(const OpArgs& call, const Tensor& x, const Tensor& W, const Tensor& b) {
  const auto [B, I] = layer_input(call, x);
  call.expect_dtype(W, "W", DType::Float32);
  call.expect_shape(W, "W", {-1, I}, "[L, I]");
  const int64_t L = W.dim(0);
  call.expect_dtype(b, "b", DType::Float32);
  call.expect_shape(b, "b", {L}, "[L]");
  return {B, I, L};
}

}  // namespace xmc::common
