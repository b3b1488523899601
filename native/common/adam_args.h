// The argument checks and option defaults of adam(param, grad, m, v, {lr,
// beta1?, beta2?, eps?, step}), and its float coefficients computed in double
// precision: shared by the CPU backend (native/cpu/adam.cc) and the CUDA
// launcher (native/cuda/adam_ops.cc), so that both update with the same numbers.
#pragma once
#include <cmath>

#include "op_args.h"

namespace xmc::common {

// Adam moments m and v of a parameter `ref`: float32, ref's shape, and three distinct tensors
// (also the moments that rewiring permutes: rewire_args.h).
template <class Tensor>
void expect_adam_moments(const OpArgs& call, const Tensor& ref, const char* ref_name, const Tensor& m, const Tensor& v) {
  call.expect_dtype(m, "m", DType::Float32);
  call.expect_dtype(v, "v", DType::Float32);
  call.expect_same_shape(m, "m", ref, ref_name);
  call.expect_same_shape(v, "v", ref, ref_name);
  call.expect_distinct(ref, ref_name, m, "m");
  call.expect_distinct(ref, ref_name, v, "v");
  call.expect_distinct(m, "m", v, "v");
}

// Coefficients: each backend's aggregate {b1, 1 - b1, b2, 1 - b2, lr / bc1, 1 / sqrt(bc2), eps}.
template <class Coefficients, class Tensor>
Coefficients adam_arguments(const OpArgs& call, const Tensor& param, const Tensor& grad, const Tensor& m,
                            const Tensor& v, const Napi::Object& opts) {
  call.expect_dtype(param, "param", DType::Float32);
  call.expect_dtype(grad, "grad", DType::Float32);
  call.expect_same_shape(grad, "grad", param, "param");
  expect_adam_moments(call, param, "param", m, v);
  call.expect_distinct(param, "param", grad, "grad");
  call.expect_distinct(grad, "grad", m, "m");
  call.expect_distinct(grad, "grad", v, "v");
  const double lr = call.option(opts, "lr", std::nullopt, 0.0, 1e30, false);
  const double beta1 = call.option(opts, "beta1", 0.9, 0.0, 0.999999999, false);
  const double beta2 = call.option(opts, "beta2", 0.999, 0.0, 0.999999999, false);
  const double eps = call.option(opts, "eps", 1e-8, 0.0, 1e30, false);
  const double step = call.option(opts, "step", std::nullopt, 1.0, 9007199254740991.0, true);
  const double bc1 = 1.0 - std::pow(beta1, step), bc2 = 1.0 - std::pow(beta2, step);
  return Coefficients{static_cast<float>(beta1), static_cast<float>(1.0 - beta1), static_cast<float>(beta2),
                      static_cast<float>(1.0 - beta2), static_cast<float>(lr / bc1),
                      static_cast<float>(1.0 / std::sqrt(bc2)), static_cast<float>(eps)};
}

}  // namespace xmc::common
