// Dense layers, ReLU and dropout.
//
//   denseForward(x[B,I], W[O,I], b[O], out[B,O])
//     out = x W^T + b                       out[b, o] = b[o] + sum_i x[b, i] W[o, i]
//   denseBackward(x[B,I], W[O,I], dOut[B,O], dX[B,I] | null, dW[O,I], dB[O])
//     dX = dOut W,  dW = dOut^T x,  dB[o] = sum_b dOut[b, o]   (overwrite; dX null for the first layer)
//   reluForward(x, out)           out = max(x, 0)              (out may be x; NaN stays NaN)
//   reluBackward(out, dOut, dX)   dX = dOut where out > 0, else 0   (dX may alias either input)
//   dropout(x, out, p, seed)      out = x * keep / (1 - p)     (inverted dropout; out may be x)
//     keep[i] = u(seed, i) >= p with u(seed, i) = (mix64(seed + i * 0x9E3779B97F4A7C15) >> 40) * 2^-24,
//     i the flat element index, mix64 the splitmix64 finaliser of backend.h. Deterministic
//     from the seed: the backward of dropout is dropout(dOut, dX, p, seed) with the same seed.
//
// Layout: row-major; W is [out, in] (PyTorch's nn.Linear). The products run
// as single-threaded OpenBLAS sgemm calls on slices of the output, one slice
// per pool thread (parallel_sgemm in backend.cc).
#include <cmath>

#include "backend.h"
#include "relu.h"
#include "common/dense_args.h"

namespace xmc::cpu {
namespace {

Napi::Value DenseForward(const Napi::CallbackInfo& info) {
  OpCall call(info, "denseForward");
  Tensor x = call.tensor(1, "x"), W = call.tensor(2, "W"), b = call.tensor(3, "b"), out = call.tensor(4, "out");
  const common::DenseDims dims = common::dense_forward_arguments(call, x, W, b, out);
  const int64_t B = dims.B, I = dims.I, O = dims.O;
  call.enqueue([pool = call.pool(), x, W, b, out, B, I, O] {
    float* o = out.data<float>();
    parallel_sgemm(*pool, false, true, B, O, I, 1.0f, x.data<float>(), I, W.data<float>(), I, 0.0f, o, O);
    const float* bias = b.data<float>();
    pool->parallel_for(B, 1, [&](int64_t r0, int64_t r1, int) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t j = 0; j < O; ++j) o[r * O + j] += bias[j];
    });
  });
  return info.Env().Undefined();
}

Napi::Value DenseBackward(const Napi::CallbackInfo& info) {
  OpCall call(info, "denseBackward");
  Tensor x = call.tensor(1, "x"), W = call.tensor(2, "W"), dOut = call.tensor(3, "dOut");
  std::optional<Tensor> dX = call.optional_tensor(4, "dX");
  Tensor dW = call.tensor(5, "dW"), dB = call.tensor(6, "dB");
  const common::DenseDims dims = common::dense_backward_arguments(call, x, W, dOut, dX, dW, dB);
  const int64_t B = dims.B, I = dims.I, O = dims.O;
  call.enqueue([pool = call.pool(), x, W, dOut, dX, dW, dB, B, I, O] {
    const float* g = dOut.data<float>();
    if (dX) parallel_sgemm(*pool, false, false, B, I, O, 1.0f, g, O, W.data<float>(), I, 0.0f, dX->data<float>(), I);
    parallel_sgemm(*pool, true, false, O, I, B, 1.0f, g, O, x.data<float>(), I, 0.0f, dW.data<float>(), I);
    float* db = dB.data<float>();
    pool->parallel_for(O, 1024, [&](int64_t o0, int64_t o1, int) {
      for (int64_t o = o0; o < o1; ++o) db[o] = 0.0f;
      for (int64_t r = 0; r < B; ++r)
        for (int64_t o = o0; o < o1; ++o) db[o] += g[r * O + o];
    });
  });
  return info.Env().Undefined();
}

Napi::Value ReluForward(const Napi::CallbackInfo& info) {
  OpCall call(info, "reluForward");
  Tensor x = call.tensor(1, "x"), out = call.tensor(2, "out");
  call.expect_dtype(x, "x", DType::Float32);
  call.expect_dtype(out, "out", DType::Float32);
  call.expect_same_shape(out, "out", x, "x");
  call.enqueue([pool = call.pool(), x, out] { relu_forward(*pool, x.data<float>(), out.data<float>(), x.size); });
  return info.Env().Undefined();
}

Napi::Value ReluBackward(const Napi::CallbackInfo& info) {
  OpCall call(info, "reluBackward");
  Tensor out = call.tensor(1, "out"), dOut = call.tensor(2, "dOut"), dX = call.tensor(3, "dX");
  call.expect_dtype(out, "out", DType::Float32);
  call.expect_dtype(dOut, "dOut", DType::Float32);
  call.expect_dtype(dX, "dX", DType::Float32);
  call.expect_same_shape(dOut, "dOut", out, "out");
  call.expect_same_shape(dX, "dX", out, "out");
  call.enqueue([pool = call.pool(), out, dOut, dX] {
    relu_backward(*pool, out.data<float>(), dOut.data<float>(), dX.data<float>(), out.size);
  });
  return info.Env().Undefined();
}

Napi::Value Dropout(const Napi::CallbackInfo& info) {
  OpCall call(info, "dropout");
  Tensor x = call.tensor(1, "x"), out = call.tensor(2, "out");
  const double p = call.number(3, "p", 0.0, 0.999999, false);
  const double seed = call.number(4, "seed", 0.0, 9007199254740991.0, true);
  call.expect_dtype(x, "x", DType::Float32);
  call.expect_dtype(out, "out", DType::Float32);
  call.expect_same_shape(out, "out", x, "x");
  call.enqueue([pool = call.pool(), x, out, p = static_cast<float>(p), seed = static_cast<uint64_t>(seed)] {
    const float* a = x.data<float>();
    float* o = out.data<float>();
    const float scale = 1.0f / (1.0f - p);
    pool->parallel_for(x.size, 1 << 15, [&](int64_t i0, int64_t i1, int) {
      for (int64_t i = i0; i < i1; ++i) {
        const uint64_t h = mix64(seed + static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull);
        const float u = static_cast<float>(h >> 40) * (1.0f / 16777216.0f);
        o[i] = u >= p ? a[i] * scale : 0.0f;
      }
    });
  });
  return info.Env().Undefined();
}

}  // namespace
}  // namespace xmc::cpu

namespace xmc {
void register_dense(Napi::Env env, Napi::Object exports) {
  exports.Set("denseForward", Napi::Function::New(env, cpu::DenseForward, "denseForward"));
  exports.Set("denseBackward", Napi::Function::New(env, cpu::DenseBackward, "denseBackward"));
  exports.Set("reluForward", Napi::Function::New(env, cpu::ReluForward, "reluForward"));
  exports.Set("reluBackward", Napi::Function::New(env, cpu::ReluBackward, "reluBackward"));
  exports.Set("dropout", Napi::Function::New(env, cpu::Dropout, "dropout"));
}
}  // namespace xmc
