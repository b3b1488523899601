// Rewiring (prune and regrow) of the sparse output layers, in stream order:
//
//   rewireFfi(W[L,k], idx[L,k], m, v, {fraction, inputDim, seed}) -> n
//   rewireSparse(rowPtr[L+1], col[nnz], W[nnz], m, v, {fraction, inputDim, seed}) -> n
//
// rewireFfi runs on the device (rewire.cu) for fan-ins up to 256 when no row
// can use over 3/4 of the inputs; other FFI layers and every CSR layer run on
// the host, as described below.
//
// The contract and the random streams are the CPU backend's
// (native/cpu/rewire.cc, docs/BACKEND.md), and so is the implementation: both
// call the shared core native/common/rewire_core.{h,cc}, so that the same
// inputs and seed give the same structure on both backends:
//   - prune n = floor(fraction * count) connections with the smallest |W|
//     (NaN smallest; ties at the threshold go to the lower flat index);
//   - FFI: each pruned slot (l, j) draws uniformly among the inputs not used
//     by row l's other connections at that moment, from a splitmix64 stream
//     seeded with mix64(seed) ^ mix64(l + 1) (an explicit free list when the
//     row uses over 3/4 of the inputs); fan-in stays k, sources distinct;
//   - CSR: n distinct empty cells of the L x inputDim matrix from one stream
//     seeded with mix64(seed) (rejection, or an explicit list when crowded);
//     rows rewritten sorted by column, W / m / v permuted alongside;
//   - new connections get W = m = v = 0.
//
// On the stream: the status block and the arrays are copied to pinned host
// memory, a host function (cudaLaunchHostFunc: no CUDA calls inside) checks
// the status snapshot (an earlier failure: skip), validates the structure
// (a failure goes into the snapshot) and rewires in place, then everything is
// copied back, the status block included. This costs two PCIe transfers of
// the layer and blocks the stream while the host works (rewiring is rare:
// every few hundred or thousand steps). The device path (rewire.cu) gives the
// same results bit for bit; the GPU tests compare both with the CPU backend.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

#include "backend.h"
#include "common/rewire_args.h"
#include "common/rewire_core.h"

namespace xmc::cuda {
namespace {

// Runs fn(begin, end) over [0, n) split across a few threads.
void parallel_rows(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  const int threads = static_cast<int>(std::clamp<int64_t>(n / 4096, 1, std::max(1u, std::thread::hardware_concurrency())));
  if (threads == 1) return fn(0, n);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back([&, t] { fn(n * t / threads, n * (t + 1) / threads); });
  for (auto& th : pool) th.join();
}

// The shared rewiring core on a few host threads, scratch from the heap.
common::RewireHost host_threads() {
  common::RewireHost host;
  host.parallel_for = [](int64_t n, int64_t, const std::function<void(int64_t, int64_t)>& body) {
    parallel_rows(n, body);
  };
  host.scratch = [](size_t bytes) {
    return std::shared_ptr<void>(::operator new(bytes), [](void* p) { ::operator delete(p); });
  };
  return host;
}

// A pinned copy of a tensor that goes to the host and comes back.
struct HostCopy {
  void* device;  // the tensor's memory (kept alive by the stream-ordered free)
  size_t bytes;
  std::shared_ptr<void> block;
  template <class T>
  T* as() const { return static_cast<T*>(block.get()); }
};

// The host side of a rewire: pinned copies, the status snapshot, the failure text of a host exception.
struct Job {
  std::vector<HostCopy> copies;
  std::shared_ptr<void> status;
  std::shared_ptr<std::string> failure;  // shared with the op's formatter
  DeviceStatus& st() const { return *static_cast<DeviceStatus*>(status.get()); }
};

// Enqueues: copies down, host work, copies up, release. `work` runs on a CUDA host thread.
void run_on_host(const OpCall& call, std::vector<const Tensor*> tensors, uint32_t serial,
                 std::shared_ptr<std::string> failure, std::function<void(Job&)> work) {
  CudaDevice& dev = call.device();
  const Launch ctx = call.launch();
  auto job = std::make_shared<Job>();
  job->failure = std::move(failure);
  job->status = dev.pinned().acquire(sizeof(DeviceStatus), ctx.op);
  check(cudaMemcpyAsync(job->status.get(), ctx.status, sizeof(DeviceStatus), cudaMemcpyDeviceToHost, ctx.stream), ctx.op,
        "cudaMemcpyAsync");
  for (const Tensor* t : tensors) {
    HostCopy c{t->data<void>(), t->bytes(), t->bytes() ? dev.pinned().acquire(t->bytes(), ctx.op) : nullptr};
    if (t->bytes())
      check(cudaMemcpyAsync(c.block.get(), t->data<void>(), t->bytes(), cudaMemcpyDeviceToHost, ctx.stream), ctx.op,
            "cudaMemcpyAsync");
    job->copies.push_back(std::move(c));
  }
  dev.host_function(
      [job, work = std::move(work), serial] {
        DeviceStatus& st = job->st();
        if (st.code != 0) return;  // an earlier op failed: skipped (the copies go back unchanged)
        try {
          work(*job);
        } catch (const std::exception& e) {
          *job->failure = e.what();
        } catch (...) {
          *job->failure = "unknown failure";
        }
        if (!job->failure->empty() && st.code == 0) {
          st.code = 15;  // a host exception: the formatter prints *failure
          st.serial = serial;
        }
      },
      ctx.op);
  for (const HostCopy& c : job->copies)
    if (c.bytes)
      check(cudaMemcpyAsync(c.device, c.block.get(), c.bytes, cudaMemcpyHostToDevice, ctx.stream), ctx.op, "cudaMemcpyAsync");
  check(cudaMemcpyAsync(ctx.status, job->status.get(), sizeof(DeviceStatus), cudaMemcpyHostToDevice, ctx.stream), ctx.op,
        "cudaMemcpyAsync");
  dev.release_after(job, ctx.op);
}

// Host-side validation failures are written into the snapshot as the device checks would.
void fail(DeviceStatus& st, uint32_t serial, uint32_t rank, uint64_t position, uint32_t v0, uint32_t v1 = 0) {
  st.code = rank;
  st.serial = serial;
  st.position = position;
  st.v0 = v0;
  st.v1 = v1;
}

Napi::Value RewireFfi(const Napi::CallbackInfo& info) {
  return guarded(info, "rewireFfi", [&]() -> Napi::Value {
    OpCall call(info, "rewireFfi");
    Tensor W = call.tensor(1, "W"), idx = call.tensor(2, "idx"), m = call.tensor(3, "m"), v = call.tensor(4, "v");
    auto [L, k] = check_ffi_layer(call, W, idx, nullptr);
    common::expect_rewire_moments(call, W, m, v);
    const common::RewireOptions o = common::parse_rewire_options(call, call.options(5), idx.dtype);
    const int64_t n = common::ffi_rewire_count(call, L, k, o);
    const int64_t total = L * k;
    if (n == 0) return Napi::Number::New(info.Env(), 0);
    Formatter idx_message = ffi_idx_formatter("rewireFfi", idx.dtype, k, o.input_dim);
    if (rewire_ffi_on_device(k, o.input_dim)) {
      const uint32_t serial = call.device().register_check(idx_message);
      const Launch ctx = call.launch();
      check_ffi_sources(ctx, idx.data<uint32_t>(), total, o.input_dim);
      CheckValues values;
      values.v0_src[0] = idx.data<uint32_t>();
      finalize_checks(ctx, serial, values);  // a bad source stops the op before anything is rewritten
      const std::shared_ptr<Buffer> scratch = call.scratch(rewire_ffi_scratch_bytes(L));
      rewire_ffi_device(ctx, W.data<float>(), idx.data<uint32_t>(), m.data<float>(), v.data<float>(), L, k, o.input_dim,
                        o.seed, n, scratch->data());
      return Napi::Number::New(info.Env(), static_cast<double>(n));
    }
    auto failure = std::make_shared<std::string>();
    const uint32_t serial = call.device().register_check([idx_message, failure](const DeviceStatus& s) {
      return s.code == 15 ? "rewireFfi: " + *failure : idx_message(s);
    });
    run_on_host(call, {&W, &idx, &m, &v}, serial, failure, [L = L, k = k, o, n, total, serial](Job& job) {
      float* w = job.copies[0].as<float>();
      uint32_t* src = job.copies[1].as<uint32_t>();
      float* mm = job.copies[2].as<float>();
      float* vv = job.copies[3].as<float>();
      const uint64_t I = static_cast<uint64_t>(o.input_dim);
      for (int64_t e = 0; e < total; ++e)
        if (src[e] >= I) return fail(job.st(), serial, 1, static_cast<uint64_t>(e), src[e]);
      common::rewire_ffi(host_threads(), L, k, o.input_dim, o.seed, n, w, src, mm, vv);
    });
    return Napi::Number::New(info.Env(), static_cast<double>(n));
  });
}

Napi::Value RewireSparse(const Napi::CallbackInfo& info) {
  return guarded(info, "rewireSparse", [&]() -> Napi::Value {
    OpCall call(info, "rewireSparse");
    Tensor rowPtr = call.tensor(1, "rowPtr"), col = call.tensor(2, "col"), W = call.tensor(3, "W"), m = call.tensor(4, "m"),
           v = call.tensor(5, "v");
    auto [L, nnz] = check_csr_layer(call, rowPtr, col, W, nullptr);
    common::expect_rewire_moments(call, W, m, v);
    const common::RewireOptions o = common::parse_rewire_options(call, call.options(6), col.dtype);
    const int64_t n = common::csr_rewire_count(call, L, nnz, o);
    if (n == 0) return Napi::Number::New(info.Env(), 0);
    Formatter csr_message = csr_formatter("rewireSparse", rowPtr.dtype, col.dtype, L, nnz, o.input_dim);
    auto failure = std::make_shared<std::string>();
    const uint32_t serial = call.device().register_check([csr_message, failure](const DeviceStatus& s) {
      return s.code == 15 ? "rewireSparse: " + *failure : csr_message(s);
    });
    run_on_host(call, {&rowPtr, &col, &W, &m, &v}, serial, failure, [L = L, nnz = nnz, o, n, serial](Job& job) {
      uint32_t* rp = job.copies[0].as<uint32_t>();
      uint32_t* cc = job.copies[1].as<uint32_t>();
      float* w = job.copies[2].as<float>();
      float* mm = job.copies[3].as<float>();
      float* vv = job.copies[4].as<float>();
      DeviceStatus& st = job.st();
      // The CSR checks of the CPU backend, in its order.
      if (rp[0] != 0) return fail(st, serial, 1, 0, rp[0]);
      for (int64_t l = 0; l < L; ++l)
        if (rp[l + 1] < rp[l]) return fail(st, serial, 2, static_cast<uint64_t>(l), rp[l], rp[l + 1]);
      if (static_cast<int64_t>(rp[L]) != nnz) return fail(st, serial, 3, static_cast<uint64_t>(L), rp[L]);
      const uint64_t I = static_cast<uint64_t>(o.input_dim);
      for (int64_t e = 0; e < nnz; ++e)
        if (cc[e] >= I) return fail(st, serial, 4, static_cast<uint64_t>(e), cc[e]);
      common::rewire_csr(host_threads(), L, nnz, o.input_dim, o.seed, n, rp, cc, w, mm, vv);
    });
    return Napi::Number::New(info.Env(), static_cast<double>(n));
  });
}

}  // namespace

void register_rewire_ops(Napi::Env env, Napi::Object ops) {
  ops.Set("rewireFfi", Napi::Function::New(env, RewireFfi, "rewireFfi"));
  ops.Set("rewireSparse", Napi::Function::New(env, RewireSparse, "rewireSparse"));
}

}  // namespace xmc::cuda
