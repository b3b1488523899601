// Rewiring (prune and regrow) of the sparse output layers, as in the paper's
// dynamic sparse training: drop the weakest connections, grow new random ones.
//
//   rewireFfi(W[L,k], idx[L,k], m[L,k], v[L,k], {fraction, inputDim, seed}) -> n
//   rewireSparse(rowPtr[L+1], col[nnz], W[nnz], m[nnz], v[nnz], {fraction, inputDim, seed}) -> n
//
// Pruning (both): n = floor(fraction * count) connections with the smallest
// |W| over the whole layer (one threshold: nth_element; ties at the threshold
// go to the lower flat index; NaN weights count as smallest). n is known when
// the op is enqueued, so it is returned synchronously.
//
// Regrowth, FFI: each pruned slot (l, j) gets a source drawn uniformly from
// the inputs [0, inputDim) not used by row l's other connections at that
// moment (its kept ones and the slots regrown before it, in slot order); the
// pruned sources are eligible again. Fan-in stays exactly k and sources stay
// distinct. Slot positions do not move.
// Regrowth, CSR: n positions drawn uniformly among the empty cells of the
// whole L x inputDim matrix (cells not held by a kept connection, pruned
// cells included), all distinct. nnz stays fixed, so the arrays keep their
// length: rowPtr changes, and each row's entries are rewritten sorted by col,
// with W, m and v permuted consistently. Row sizes change.
//
// New connections start with W = 0 (as in RigL: they do not change the
// layer's output until trained) and Adam moments m = v = 0 (fresh state).
// Kept connections keep their weights and moments.
//
// Randomness: FFI row l draws from a splitmix64 stream seeded with
// mix64(seed) ^ mix64(l + 1), so the result does not depend on the thread
// count; CSR draws from one stream seeded with mix64(seed) (sequential).
#include "common/rewire_args.h"
#include "common/rewire_core.h"
#include "rowsparse.h"

namespace xmc::cpu {
namespace {

// The shared rewiring core (native/common/rewire_core.h) on this backend's
// thread pool, its scratch memory counted by the device's allocator.
common::RewireHost pool_host(ThreadPool& pool, const std::shared_ptr<Allocator>& alloc) {
  common::RewireHost host;
  host.parallel_for = [&pool](int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
    pool.parallel_for(n, grain, [&](int64_t i0, int64_t i1, int) { body(i0, i1); });
  };
  host.scratch = [alloc](size_t bytes) {
    auto buffer = std::make_shared<Scratch>(alloc, bytes);
    return std::shared_ptr<void>(buffer, buffer->as<void>());
  };
  return host;
}

Napi::Value RewireFfi(const Napi::CallbackInfo& info) {
  OpCall call(info, "rewireFfi");
  Tensor W = call.tensor(1, "W"), idx = call.tensor(2, "idx"), m = call.tensor(3, "m"), v = call.tensor(4, "v");
  auto [L, k] = check_ffi_layer(call, W, idx, nullptr);
  common::expect_rewire_moments(call, W, m, v);
  const common::RewireOptions o = common::parse_rewire_options(call, call.options(5), idx.dtype);
  const int64_t n = common::ffi_rewire_count(call, L, k, o);
  if (n == 0) return Napi::Number::New(info.Env(), 0);
  call.enqueue([pool = call.pool(), alloc = call.allocator(), W, idx, m, v, L = L, k = k, o, n] {
    validate_ffi_idx(*pool, idx, k, o.input_dim);
    common::rewire_ffi(pool_host(*pool, alloc), L, k, o.input_dim, o.seed, n, W.data<float>(), idx.data<uint32_t>(),
                       m.data<float>(), v.data<float>());
  });
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

Napi::Value RewireSparse(const Napi::CallbackInfo& info) {
  OpCall call(info, "rewireSparse");
  Tensor rowPtr = call.tensor(1, "rowPtr"), col = call.tensor(2, "col"), W = call.tensor(3, "W"), m = call.tensor(4, "m"),
         v = call.tensor(5, "v");
  auto [L, nnz] = check_csr_layer(call, rowPtr, col, W, nullptr);
  common::expect_rewire_moments(call, W, m, v);
  const common::RewireOptions o = common::parse_rewire_options(call, call.options(6), col.dtype);
  const int64_t n = common::csr_rewire_count(call, L, nnz, o);
  if (n == 0) return Napi::Number::New(info.Env(), 0);
  call.enqueue([pool = call.pool(), alloc = call.allocator(), rowPtr, col, W, m, v, L = L, nnz = nnz, o, n] {
    validate_csr(*pool, rowPtr, L, col, nnz, o.input_dim);
    common::rewire_csr(pool_host(*pool, alloc), L, nnz, o.input_dim, o.seed, n, rowPtr.data<uint32_t>(),
                       col.data<uint32_t>(), W.data<float>(), m.data<float>(), v.data<float>());
  });
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

}  // namespace
}  // namespace xmc::cpu

namespace xmc {
void register_rewire(Napi::Env env, Napi::Object exports) {
  exports.Set("rewireFfi", Napi::Function::New(env, cpu::RewireFfi, "rewireFfi"));
  exports.Set("rewireSparse", Napi::Function::New(env, cpu::RewireSparse, "rewireSparse"));
}
}  // namespace xmc
