// The argument checks of rewireFfi / rewireSparse, shared by the CPU backend
// (native/cpu/rewire.cc) and the CUDA backend (native/cuda/rewire_ops.cc),
// with their messages. The structural checks of the layer itself
// (check_ffi_layer / check_csr_layer) stay with each backend.
#pragma once
#include <cmath>
#include <string>

#include "adam_args.h"
#include "op_args.h"

namespace xmc::common {

struct RewireOptions {
  double fraction;
  int64_t input_dim;
  uint64_t seed;
};

// {fraction, inputDim, seed}; inputDim must fit the index dtype: int32 index
// tensors hold sources < 2^31.
inline RewireOptions parse_rewire_options(const OpArgs& call, const Napi::Object& opts, DType index_dtype) {
  RewireOptions o;
  o.fraction = call.option(opts, "fraction", std::nullopt, 0.0, 1.0, false);
  const double max_dim = index_dtype == DType::Int32 ? 2147483648.0 : 4294967296.0;
  o.input_dim = static_cast<int64_t>(call.option(opts, "inputDim", std::nullopt, 1.0, max_dim, true));
  o.seed = static_cast<uint64_t>(call.option(opts, "seed", std::nullopt, 0.0, 9007199254740991.0, true));
  return o;
}

// The Adam moments m and v that rewiring permutes with W (adam_args.h's checks).
template <class Tensor>
void expect_rewire_moments(const OpArgs& call, const Tensor& W, const Tensor& m, const Tensor& v) {
  expect_adam_moments(call, W, "W", m, v);
}

// n = floor(fraction * L * k), after checking that a row can hold k distinct sources.
inline int64_t ffi_rewire_count(const OpArgs& call, int64_t L, int64_t k, const RewireOptions& o) {
  if (k > o.input_dim)
    call.range_error("fan-in k = " + std::to_string(k) + " exceeds option inputDim = " + std::to_string(o.input_dim) +
                     ": a row cannot have k distinct sources");
  return static_cast<int64_t>(std::floor(o.fraction * static_cast<double>(L * k)));
}

// n = floor(fraction * nnz), after checking that the L x inputDim matrix holds nnz cells.
inline int64_t csr_rewire_count(const OpArgs& call, int64_t L, int64_t nnz, const RewireOptions& o) {
  if (static_cast<double>(nnz) > static_cast<double>(L) * static_cast<double>(o.input_dim))
    call.range_error("nnz = " + std::to_string(nnz) + " exceeds L * inputDim = " + std::to_string(L) + " * " +
                     std::to_string(o.input_dim) + " cells");
  return static_cast<int64_t>(std::floor(o.fraction * static_cast<double>(nnz)));
}

}  // namespace xmc::common
