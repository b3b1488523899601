// Launcher of Adam (kernel and formula: adam.cu). Checks, option defaults and
// the double-precision coefficients are the CPU backend's (native/cpu/adam.cc).
#include <cmath>

#include "backend.h"

namespace xmc::cuda {
namespace {

Napi::Value Adam(const Napi::CallbackInfo& info) {
  return guarded(info, "adam", [&]() -> Napi::Value {
    OpCall call(info, "adam");
    Tensor param = call.tensor(1, "param"), grad = call.tensor(2, "grad"), m = call.tensor(3, "m"), v = call.tensor(4, "v");
    Napi::Object opts = call.options(5);
    call.expect_dtype(param, "param", DType::Float32);
    call.expect_dtype(grad, "grad", DType::Float32);
    call.expect_dtype(m, "m", DType::Float32);
    call.expect_dtype(v, "v", DType::Float32);
    call.expect_same_shape(grad, "grad", param, "param");
    call.expect_same_shape(m, "m", param, "param");
    call.expect_same_shape(v, "v", param, "param");
    call.expect_distinct(param, "param", grad, "grad");
    call.expect_distinct(param, "param", m, "m");
    call.expect_distinct(param, "param", v, "v");
    call.expect_distinct(m, "m", v, "v");
    call.expect_distinct(grad, "grad", m, "m");
    call.expect_distinct(grad, "grad", v, "v");
    const double lr = call.option(opts, "lr", std::nullopt, 0.0, 1e30, false);
    const double beta1 = call.option(opts, "beta1", 0.9, 0.0, 0.999999999, false);
    const double beta2 = call.option(opts, "beta2", 0.999, 0.0, 0.999999999, false);
    const double eps = call.option(opts, "eps", 1e-8, 0.0, 1e30, false);
    const double step = call.option(opts, "step", std::nullopt, 1.0, 9007199254740991.0, true);
    const double bc1 = 1.0 - std::pow(beta1, step), bc2 = 1.0 - std::pow(beta2, step);
    const AdamCoefficients c{static_cast<float>(beta1), static_cast<float>(1.0 - beta1), static_cast<float>(beta2),
                             static_cast<float>(1.0 - beta2), static_cast<float>(lr / bc1),
                             static_cast<float>(1.0 / std::sqrt(bc2)), static_cast<float>(eps)};
    adam(call.launch(), param.data<float>(), grad.data<float>(), m.data<float>(), v.data<float>(), param.size, c);
    return info.Env().Undefined();
  });
}

}  // namespace

void register_adam_ops(Napi::Env env, Napi::Object ops) { ops.Set("adam", Napi::Function::New(env, Adam, "adam")); }

}  // namespace xmc::cuda
