// Launchers of the dense layers, ReLU and dropout (kernels: dense.cu,
// elementwise.cu; products: gemm.cc).
//
//   denseForward(x[B,I], W[O,I], b[O], out[B,O])    out = x W^T + b    (gemm, then add_bias_rows)
//   denseBackward(x, W, dOut[B,O], dX | null, dW, dB)
//       dX = dOut W (gemm), dW = dOut^T x (gemm), dB = column sums of dOut (in row order)
//   reluForward(x, out), reluBackward(out, dOut, dX), dropout(x, out, p, seed)
//
// Layout: row-major, W [out, in] (PyTorch's nn.Linear). Checks and messages
// are the CPU backend's (native/cpu/dense.cc).
#include "backend.h"
#include "common/dense_args.h"

namespace xmc::cuda {
namespace {

Napi::Value DenseForward(const Napi::CallbackInfo& info) {
  return guarded(info, "denseForward", [&]() -> Napi::Value {
    OpCall call(info, "denseForward");
    Tensor x = call.tensor(1, "x"), W = call.tensor(2, "W"), b = call.tensor(3, "b"), out = call.tensor(4, "out");
    const common::DenseDims dims = common::dense_forward_arguments(call, x, W, b, out);
    const int64_t B = dims.B, I = dims.I, O = dims.O;
    gemm(call, false, true, B, O, I, x.data<float>(), I, W.data<float>(), I, out.data<float>(), O);
    add_bias_rows(call.launch(), out.data<float>(), b.data<float>(), B, O, O);
    return info.Env().Undefined();
  });
}

Napi::Value DenseBackward(const Napi::CallbackInfo& info) {
  return guarded(info, "denseBackward", [&]() -> Napi::Value {
    OpCall call(info, "denseBackward");
    Tensor x = call.tensor(1, "x"), W = call.tensor(2, "W"), dOut = call.tensor(3, "dOut");
    std::optional<Tensor> dX = call.optional_tensor(4, "dX");
    Tensor dW = call.tensor(5, "dW"), dB = call.tensor(6, "dB");
    const common::DenseDims dims = common::dense_backward_arguments(call, x, W, dOut, dX, dW, dB);
    const int64_t B = dims.B, I = dims.I, O = dims.O;
    const float* g = dOut.data<float>();
    if (dX) gemm(call, false, false, B, I, O, g, O, W.data<float>(), I, dX->data<float>(), I);
    gemm(call, true, false, O, I, B, g, O, x.data<float>(), I, dW.data<float>(), I);
    column_sums(call.launch(), g, B, O, dB.data<float>());
    return info.Env().Undefined();
  });
}

Napi::Value ReluForward(const Napi::CallbackInfo& info) {
  return guarded(info, "reluForward", [&]() -> Napi::Value {
    OpCall call(info, "reluForward");
    Tensor x = call.tensor(1, "x"), out = call.tensor(2, "out");
    call.expect_dtype(x, "x", DType::Float32);
    call.expect_dtype(out, "out", DType::Float32);
    call.expect_same_shape(out, "out", x, "x");
    relu_forward(call.launch(), x.data<float>(), out.data<float>(), x.size);
    return info.Env().Undefined();
  });
}

Napi::Value ReluBackward(const Napi::CallbackInfo& info) {
  return guarded(info, "reluBackward", [&]() -> Napi::Value {
    OpCall call(info, "reluBackward");
    Tensor out = call.tensor(1, "out"), dOut = call.tensor(2, "dOut"), dX = call.tensor(3, "dX");
    call.expect_dtype(out, "out", DType::Float32);
    call.expect_dtype(dOut, "dOut", DType::Float32);
    call.expect_dtype(dX, "dX", DType::Float32);
    call.expect_same_shape(dOut, "dOut", out, "out");
    call.expect_same_shape(dX, "dX", out, "out");
    relu_backward(call.launch(), out.data<float>(), dOut.data<float>(), dX.data<float>(), out.size);
    return info.Env().Undefined();
  });
}

Napi::Value Dropout(const Napi::CallbackInfo& info) {
  return guarded(info, "dropout", [&]() -> Napi::Value {
    OpCall call(info, "dropout");
    Tensor x = call.tensor(1, "x"), out = call.tensor(2, "out");
    const double p = call.number(3, "p", 0.0, 0.999999, false);
    const double seed = call.number(4, "seed", 0.0, 9007199254740991.0, true);
    call.expect_dtype(x, "x", DType::Float32);
    call.expect_dtype(out, "out", DType::Float32);
    call.expect_same_shape(out, "out", x, "x");
    dropout(call.launch(), x.data<float>(), out.data<float>(), x.size, static_cast<float>(p), static_cast<uint64_t>(seed));
    return info.Env().Undefined();
  });
}

}  // namespace

void register_dense_ops(Napi::Env env, Napi::Object ops) {
  ops.Set("denseForward", Napi::Function::New(env, DenseForward, "denseForward"));
  ops.Set("denseBackward", Napi::Function::New(env, DenseBackward, "denseBackward"));
  ops.Set("reluForward", Napi::Function::New(env, ReluForward, "reluForward"));
  ops.Set("reluBackward", Napi::Function::New(env, ReluBackward, "reluBackward"));
  ops.Set("dropout", Napi::Function::New(env, Dropout, "dropout"));
}

}  // namespace xmc::cuda
