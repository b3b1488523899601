// Launcher of Adam (kernel and formula: adam.cu). Checks, option defaults and
// the double-precision coefficients are shared with the CPU backend (native/common/adam_args.h).
#include <cmath>

#include "backend.h"
#include "common/adam_args.h"

namespace xmc::cuda {
namespace {

Napi::Value Adam(const Napi::CallbackInfo& info) {
  return guarded(info, "adam", [&]() -> Napi::Value {
    OpCall call(info, "adam");
    Tensor param = call.tensor(1, "param"), grad = call.tensor(2, "grad"), m = call.tensor(3, "m"), v = call.tensor(4, "v");
    const AdamCoefficients c =
        common::adam_arguments<AdamCoefficients>(call, param, grad, m, v, call.options(5));
    adam(call.launch(), param.data<float>(), grad.data<float>(), m.data<float>(), v.data<float>(), param.size, c);
    return info.Env().Undefined();
  });
}

}  // namespace

void register_adam_ops(Napi::Env env, Napi::Object ops) { ops.Set("adam", Napi::Function::New(env, Adam, "adam")); }

}  // namespace xmc::cuda
