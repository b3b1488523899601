// Fixed fan-in (FFI) sparse layer: every output (label) l has exactly k
// connections, to the inputs idx[l, 0..k) (distinct within a row, < I).
//
//   ffiForward(x[B,I], W[L,k], idx[L,k], b[L], out[B,L])
//     out[b, l] = b[l] + sum_j W[l, j] * x[b, idx[l, j]]
//   ffiBackward(x[B,I], W[L,k], idx[L,k], dOut[B,L], dX[B,I] | null, dW[L,k], dB[L])
//     dB[l]    = sum_b dOut[b, l]
//     dW[l, j] = sum_b dOut[b, l] * x[b, idx[l, j]]
//     dX[b, i] = sum_{(l, j) : idx[l, j] = i} W[l, j] * dOut[b, l]   (omitted when dX is null)
//   Gradients overwrite their outputs (no accumulation).
//   ffiLossBackward(x, W, idx, b[L], labelPtr[B+1], labelIds[nnz], dX | null, dW, dB, loss[1], options)
//     the layer's forward, lossForward's loss (options as there) and the
//     backward from its gradient, in one pass per tile of labels: the [B, L]
//     scores are never stored. Same dW, dB, dX as ffiForward + lossForward +
//     ffiBackward, bit for bit; the loss value is summed in another order.
//     Option inputRelu: x is a ReLU's input (the trainer's intermediate layer
//     before its activation): the op reads max(x, 0) and masks dX where
//     x <= 0, the results of reluForward, this op and reluBackward without
//     their two passes over [B, I].
//
// Layout: W, idx row-major [L, k] (row l's connections contiguous); idx is
// uint32 (int32 accepted; values must be < I, checked when the op runs).
// x [B, I], out / dOut [B, L], dX [B, I] row-major. The kernels transpose x
// to [I, B] in scratch memory first (see rowsparse.h for the tiles and for
// how the dX scatter avoids races: per-thread partial buffers).
#include "relu.h"
#include "rowsparse.h"
#include "common/layer_args.h"
#include "common/loss_args.h"

namespace xmc::cpu {

std::string index_text(DType dtype, uint32_t bits) {
  return dtype == DType::Int32 ? std::to_string(static_cast<int32_t>(bits)) : std::to_string(bits);
}

std::pair<int64_t, int64_t> check_ffi_layer(const OpCall& call, const Tensor& W, const Tensor& idx, const Tensor* b) {
  return common::ffi_layer(call, W, idx, b);
}

void validate_ffi_idx(ThreadPool& pool, const Tensor& idx, int64_t k, int64_t I) {
  const int64_t bad = first_out_of_range(pool, idx.data<uint32_t>(), idx.size, static_cast<uint64_t>(I));
  if (bad >= 0)
    throw OpError("idx[" + std::to_string(bad / k) + ", " + std::to_string(bad % k) +
                  "] = " + index_text(idx.dtype, idx.data<uint32_t>()[bad]) + " is not a valid source: it must be in [0, I = " +
                  std::to_string(I) + ")");
}

namespace {

// ffiForward(backend, x, W, idx, b, out)
Napi::Value FfiForward(const Napi::CallbackInfo& info) {
  OpCall call(info, "ffiForward");
  Tensor x = call.tensor(1, "x"), W = call.tensor(2, "W"), idx = call.tensor(3, "idx"), b = call.tensor(4, "b"),
         out = call.tensor(5, "out");
  const common::RowSparseDims d = common::ffi_forward_arguments(call, x, W, idx, b, out);
  const int64_t B = d.B, I = d.I, L = d.L, k = d.n;
  call.enqueue([pool = call.pool(), alloc = call.allocator(), x, W, idx, b, out, B, I, L, k] {
    validate_ffi_idx(*pool, idx, k, I);
    TransposedInput xT(*pool, alloc, x.data<float>(), B, I);
    RowSparse rows{nullptr, k, idx.data<uint32_t>(), W.data<float>()};
    rowsparse_forward(*pool, alloc, rows, b.data<float>(), xT.data(), B, 0, L, out.data<float>(), L);
  });
  return info.Env().Undefined();
}

// ffiBackward(backend, x, W, idx, dOut, dX | null, dW, dB)
Napi::Value FfiBackward(const Napi::CallbackInfo& info) {
  OpCall call(info, "ffiBackward");
  Tensor x = call.tensor(1, "x"), W = call.tensor(2, "W"), idx = call.tensor(3, "idx"), dOut = call.tensor(4, "dOut");
  std::optional<Tensor> dX = call.optional_tensor(5, "dX");
  Tensor dW = call.tensor(6, "dW"), dB = call.tensor(7, "dB");
  const common::RowSparseDims d = common::ffi_backward_arguments(call, x, W, idx, dOut, dX, dW, dB);
  const int64_t B = d.B, I = d.I, L = d.L, k = d.n;
  call.enqueue([pool = call.pool(), alloc = call.allocator(), x, W, idx, dOut, dX, dW, dB, B, I, L, k] {
    validate_ffi_idx(*pool, idx, k, I);
    TransposedInput xT(*pool, alloc, x.data<float>(), B, I);
    RowSparse rows{nullptr, k, idx.data<uint32_t>(), W.data<float>()};
    rowsparse_backward(*pool, alloc, rows, L, I, xT.data(), B, dOut.data<float>(), dX ? dX->data<float>() : nullptr,
                       dW.data<float>(), dB.data<float>());
  });
  return info.Env().Undefined();
}

// ffiLossBackward(backend, x, W, idx, b, labelPtr, labelIds, dX | null, dW, dB, loss, options)
Napi::Value FfiLossBackward(const Napi::CallbackInfo& info) {
  OpCall call(info, "ffiLossBackward");
  Tensor x = call.tensor(1, "x"), W = call.tensor(2, "W"), idx = call.tensor(3, "idx"), b = call.tensor(4, "b"),
         labelPtr = call.tensor(5, "labelPtr"), labelIds = call.tensor(6, "labelIds");
  std::optional<Tensor> dX = call.optional_tensor(7, "dX");
  Tensor dW = call.tensor(8, "dW"), dB = call.tensor(9, "dB"), loss = call.tensor(10, "loss");
  const common::FfiLossShape sh =
      common::ffi_loss_backward_arguments(call, x, W, idx, b, labelPtr, labelIds, dX, dW, dB, loss, call.options(11));
  call.enqueue([pool = call.pool(), alloc = call.allocator(), x, W, idx, b, labelPtr, labelIds, dX, dW, dB, loss, sh] {
    validate_ffi_idx(*pool, idx, sh.k, sh.I);
    const uint32_t* lp = labelPtr.data<uint32_t>();
    validate_label_ptr(lp, sh.B, labelIds.size);
    const LabelPositives positives =
        LabelPositives::build(lp, labelIds.data<uint32_t>(), sh.B, sh.loss.label_offset, sh.L);
    const double inv = sh.B > 0 ? 1.0 / (static_cast<double>(sh.B) * sh.loss.normaliser) : 0.0;
    // inputRelu: the layer reads max(x, 0) (reluForward's rule) from a scratch copy.
    std::optional<Scratch> relu;
    const float* input = x.data<float>();
    if (sh.input_relu) {
      relu.emplace(alloc, sizeof(float) * std::max<int64_t>(1, x.size));
      relu_forward(*pool, input, relu->as<float>(), x.size);
      input = relu->as<float>();
    }
    TransposedInput xT(*pool, alloc, input, sh.B, sh.I);
    RowSparse rows{nullptr, sh.k, idx.data<uint32_t>(), W.data<float>()};
    const double total = rowsparse_loss_backward(
        *pool, alloc, rows, b.data<float>(), sh.L, sh.I, xT.data(), sh.B, positives,
        sh.loss.bce ? LossKind::Bce : LossKind::SquaredHinge, static_cast<float>(inv),
        dX ? dX->data<float>() : nullptr, dW.data<float>(), dB.data<float>());
    loss.data<float>()[0] = static_cast<float>(total * inv);
    // reluBackward's rule, tested on x: max(x, 0) > 0 exactly where x > 0
    if (sh.input_relu && dX) relu_backward(*pool, x.data<float>(), dX->data<float>(), dX->data<float>(), x.size);
  });
  return info.Env().Undefined();
}

}  // namespace
}  // namespace xmc::cpu

namespace xmc {
void register_ffi(Napi::Env env, Napi::Object exports) {
  exports.Set("ffiForward", Napi::Function::New(env, cpu::FfiForward, "ffiForward"));
  exports.Set("ffiBackward", Napi::Function::New(env, cpu::FfiBackward, "ffiBackward"));
  exports.Set("ffiLossBackward", Napi::Function::New(env, cpu::FfiLossBackward, "ffiLossBackward"));
}
}  // namespace xmc
