// The argument checks of the ops that compute a multi-label loss from a batch
// CSR of label lists: lossForward (scores given) and ffiLossBackward (scores
// computed by an FFI layer on the fly). Shared word for word by the CPU
// backend (native/cpu/loss.cc, ffi.cc) and the CUDA launchers
// (native/cuda/loss_ops.cc, rowsparse_ops.cc).
//
//   options  {kind = 'squared-hinge' | 'bce', labelOffset = 0, normaliser = L}
//   labels   labelPtr [B + 1], labelIds [nnz], index tensors (the values are
//            checked when the op runs: labelPtr[0] = 0, non-decreasing,
//            labelPtr[B] <= nnz)
#pragma once
#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <tuple>

#include "layer_args.h"
#include "op_args.h"

namespace xmc::common {

struct LossOptions {
  bool bce = false;
  int64_t label_offset = 0;
  double normaliser = 1.0;
};

// The options object of a loss op whose shard has L labels.
inline LossOptions loss_options(const OpArgs& call, const Napi::Object& opts, int64_t L) {
  LossOptions o;
  o.bce = call.string_option(opts, "kind", "squared-hinge", {"squared-hinge", "bce"}) == "bce";
  o.label_offset = static_cast<int64_t>(call.option(opts, "labelOffset", 0.0, 0.0, 4294967295.0, true));
  o.normaliser = call.option(opts, "normaliser", static_cast<double>(std::max<int64_t>(L, 1)), 1e-300, 1e300, false);
  return o;
}

// labelPtr [B + 1] and labelIds [nnz], both index tensors.
template <class Tensor>
void expect_label_csr(const OpArgs& call, const Tensor& labelPtr, const Tensor& labelIds, int64_t B) {
  call.expect_index_dtype(labelPtr, "labelPtr");
  call.expect_shape(labelPtr, "labelPtr", {B + 1}, "[B + 1]");
  call.expect_index_dtype(labelIds, "labelIds");
  call.expect_shape(labelIds, "labelIds", {-1}, "[nnz]");
}

// The run-time label checks' messages (without the "<op>: " prefix). code: 1
// labelPtr[0] != 0 (value v), 2 a decrease at row `row`, 3 labelPtr[B] = v
// exceeds the nids labelIds.
inline std::string label_ptr_error(int code, uint64_t v, int64_t row, int64_t nids) {
  if (code == 1) return "labelPtr[0] must be 0, got " + std::to_string(v);
  if (code == 2) return "labelPtr is not non-decreasing at row " + std::to_string(row);
  return "labelPtr[B] = " + std::to_string(v) + " exceeds the " + std::to_string(nids) + " labelIds";
}

}  // namespace xmc::common

namespace xmc::common {

// lossForward(scores [B, L], labelPtr [B + 1], labelIds [nnz], dScores [B, L] | null, loss [1], options)
struct LossShape {
  int64_t B = 0, L = 0;
  LossOptions loss;
};

template <class Tensor>
LossShape loss_forward_arguments(const OpArgs& call, const Tensor& scores, const Tensor& labelPtr, const Tensor& labelIds,
                                 const std::optional<Tensor>& dScores, const Tensor& loss, const Napi::Object& opts) {
  call.expect_dtype(scores, "scores", DType::Float32);
  call.expect_shape(scores, "scores", {-1, -1}, "[B, L]");
  LossShape s;
  s.B = scores.dim(0);
  s.L = scores.dim(1);
  expect_label_csr(call, labelPtr, labelIds, s.B);
  if (dScores) {
    call.expect_dtype(*dScores, "dScores", DType::Float32);
    call.expect_shape(*dScores, "dScores", {s.B, s.L}, "[B, L]");
  }
  call.expect_dtype(loss, "loss", DType::Float32);
  call.expect_shape(loss, "loss", {1}, "[1]");
  call.expect_distinct(loss, "loss", scores, "scores");
  if (dScores) call.expect_distinct(loss, "loss", *dScores, "dScores");
  s.loss = loss_options(call, opts, s.L);
  return s;
}

// ffiLossBackward(x [B, I], W [L, k], idx [L, k], b [L], labelPtr [B + 1], labelIds [nnz],
//                 dX [B, I] | null, dW [L, k], dB [L], loss [1], options)
// Option inputRelu: x is a ReLU's input; the layer reads max(x, 0) (NaN stays NaN) and dX is the gradient
// with respect to x (zero where x <= 0), as reluForward, the op and reluBackward would give.
struct FfiLossShape {
  int64_t B = 0, I = 0, L = 0, k = 0;
  LossOptions loss;
  bool input_relu = false;
};

template <class Tensor>
FfiLossShape ffi_loss_backward_arguments(const OpArgs& call, const Tensor& x, const Tensor& W, const Tensor& idx,
                                         const Tensor& b, const Tensor& labelPtr, const Tensor& labelIds,
                                         const std::optional<Tensor>& dX, const Tensor& dW, const Tensor& dB,
                                         const Tensor& loss, const Napi::Object& opts) {
  FfiLossShape s;
  std::tie(s.B, s.I) = layer_input(call, x);
  std::tie(s.L, s.k) = ffi_layer(call, W, idx, &b);
  expect_label_csr(call, labelPtr, labelIds, s.B);
  if (dX) {
    call.expect_dtype(*dX, "dX", DType::Float32);
    call.expect_shape(*dX, "dX", {s.B, s.I}, "[B, I]");
  }
  call.expect_dtype(dW, "dW", DType::Float32);
  call.expect_shape(dW, "dW", {s.L, s.k}, "[L, k]");
  call.expect_dtype(dB, "dB", DType::Float32);
  call.expect_shape(dB, "dB", {s.L}, "[L]");
  call.expect_dtype(loss, "loss", DType::Float32);
  call.expect_shape(loss, "loss", {1}, "[1]");
  // Outputs must not alias the inputs or each other.
  const std::pair<const Tensor*, const char*> inputs[] = {{&x, "x"}, {&W, "W"}, {&idx, "idx"}, {&b, "b"},
                                                          {&labelPtr, "labelPtr"}, {&labelIds, "labelIds"}};
  std::vector<std::pair<const Tensor*, const char*>> outputs = {{&dW, "dW"}, {&dB, "dB"}, {&loss, "loss"}};
  if (dX) outputs.push_back({&*dX, "dX"});
  for (size_t o = 0; o < outputs.size(); ++o) {
    for (const auto& [t, n] : inputs) call.expect_distinct(*outputs[o].first, outputs[o].second, *t, n);
    for (size_t p = o + 1; p < outputs.size(); ++p)
      call.expect_distinct(*outputs[o].first, outputs[o].second, *outputs[p].first, outputs[p].second);
  }
  s.loss = loss_options(call, opts, s.L);
  s.input_relu = call.bool_option(opts, "inputRelu", false);
  return s;
}

}  // namespace xmc::common
