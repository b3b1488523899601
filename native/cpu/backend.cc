// CPU reference backend: allocator, thread pool, the stream (Device) and the
// two JS classes, CpuBackend and CpuTensor. The execution model is described
// in backend.h and docs/BACKEND.md; the op families live in the other files of
// this folder and reach the stream through OpCall.
//
// JS surface (wrapped by src/native/cpu-backend.ts):
//   new CpuBackend({threads?, int8TopK?})
//     .tensor(dtype, shape)        -> CpuTensor, contents poisoned (0xFF bytes: NaN / -1 / 0xFFFFFFFF)
//     .fromArray(typedArray, shape?) -> CpuTensor, a copy
//     .sync()                      -> Promise<void>, after everything enqueued before it
//     .memoryStats()               -> {currentBytes, peakBytes, liveAllocations}
//     .resetPeakMemory(), .threads
//   addon.fill(backend, t, value), addon.copy(backend, src, dst)   (queued)
//   CpuTensor: .dtype .shape .size .disposed, .read() -> Promise<TypedArray>,
//     .write(typedArray) (enqueued), .dispose()
#include "backend.h"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "common/js_classes.h"
#include "register.h"

namespace xmc::cpu {

// ---------------------------------------------------------------------------
// Allocator / Buffer

static size_t round_up_64(size_t bytes) { return (bytes + 63) / 64 * 64; }

void* Allocator::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  size_t rounded = round_up_64(bytes);
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw std::bad_alloc();
  int64_t now = current_.fetch_add(static_cast<int64_t>(rounded)) + static_cast<int64_t>(rounded);
  int64_t peak = peak_.load();
  while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
  }
  live_.fetch_add(1);
  return p;
}

void Allocator::release(void* p, size_t bytes) {
  if (!p) return;
  std::free(p);
  current_.fetch_sub(static_cast<int64_t>(round_up_64(bytes)));
  live_.fetch_sub(1);
}

Buffer::Buffer(std::shared_ptr<Allocator> allocator, size_t bytes) : allocator_(std::move(allocator)), bytes_(bytes) {
  data_ = allocator_->allocate(bytes);
}

Buffer::~Buffer() { allocator_->release(data_, bytes_); }

// ---------------------------------------------------------------------------
// ThreadPool

ThreadPool::ThreadPool(int threads) : size_(std::max(1, threads)) {
  for (int t = 1; t < size_; ++t) threads_.emplace_back([this, t] { loop(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::loop(int tid) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int)>* job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    std::exception_ptr err;
    try {
      (*job)(tid);
    } catch (...) {
      err = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (err && !error_) error_ = err;
    if (--remaining_ == 0) done_.notify_one();
  }
}

void ThreadPool::run(const std::function<void(int)>& fn) {
  if (size_ == 1) {
    fn(0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    remaining_ = size_ - 1;
    error_ = nullptr;
    ++generation_;
  }
  wake_.notify_all();
  std::exception_ptr err;
  try {
    fn(0);
  } catch (...) {
    err = std::current_exception();
  }
  std::unique_lock<std::mutex> lock(mu_);
  done_.wait(lock, [&] { return remaining_ == 0; });
  if (!err) err = error_;
  error_ = nullptr;
  job_ = nullptr;
  lock.unlock();
  if (err) std::rethrow_exception(err);
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (size_ == 1 || n <= grain) {
    fn(0, n, 0);
    return;
  }
  int64_t chunk = std::max<int64_t>(grain, (n + size_ * 8 - 1) / (size_ * 8));
  std::atomic<int64_t> next{0};
  run([&](int tid) {
    for (;;) {
      int64_t begin = next.fetch_add(chunk);
      if (begin >= n) break;
      fn(begin, std::min(n, begin + chunk), tid);
    }
  });
}

// ---------------------------------------------------------------------------
// Device (the stream)

static std::atomic<uint64_t> g_next_device_id{1};
static std::once_flag g_blas_once;

Device::Device(Napi::Env env, int threads)
    : id_(g_next_device_id.fetch_add(1)), env_(env), allocator_(std::make_shared<Allocator>()), pool_(threads) {
  // Parallelism comes from our pool: each pool thread runs its own slice of a
  // product as a single-threaded OpenBLAS call (parallel_sgemm), so OpenBLAS's
  // own threads must not compete with ours. This is process-wide.
  std::call_once(g_blas_once, [] { openblas_set_num_threads(1); });
  tsfn_ = Tsfn::New(env, "xmc-cpu-backend", 0, 1, this);
  tsfn_.Unref(env);  // referenced only while promises are pending
  if (napi_add_env_cleanup_hook(env, cleanup_hook, this) == napi_ok) hook_registered_ = true;
  worker_ = std::thread([this] { worker_loop(); });
}

Device::~Device() {
  shutdown();
  if (hook_registered_) napi_remove_env_cleanup_hook(env_, cleanup_hook, this);
}

void Device::cleanup_hook(void* arg) {
  auto* device = static_cast<Device*>(arg);
  device->hook_registered_ = false;
  device->shutdown();
}

void Device::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  tsfn_.Abort();
}

Tensor Device::allocate(DType dtype, std::vector<int64_t> shape) {
  Tensor t;
  t.dtype = dtype;
  t.size = 1;
  for (int64_t d : shape) t.size *= d;
  t.shape = std::move(shape);
  try {
    t.buffer = std::make_shared<Buffer>(allocator_, t.bytes());
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(Napi::Env(env_), "out of memory allocating a " + std::string(dtype_name(dtype)) +
                                                     " tensor of shape " + shape_string(t.shape) + " (" +
                                                     std::to_string(t.bytes()) + " bytes)");
  }
  return t;
}

void Device::enqueue(const char* op, std::function<void()> run) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) throw Napi::Error::New(Napi::Env(env_), std::string(op) + ": the backend has been shut down");
    queue_.push_back(Task{op, std::move(run), 0});
  }
  cv_.notify_one();
}

Napi::Promise Device::enqueue_settled(Napi::Env env, const char* op, std::function<void()> run, MakeValue make_value) {
  if (shut_down_) throw Napi::Error::New(env, std::string(op) + ": the backend has been shut down");
  auto deferred = Napi::Promise::Deferred::New(env);
  uint64_t id = next_completion_++;
  if (pending_.empty()) {
    tsfn_.Ref(env);  // keep the event loop alive until the promise settles
    self_ = shared_from_this();
  }
  pending_.emplace(id, Pending{deferred, std::move(make_value)});
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(Task{op, std::move(run), id});
  }
  cv_.notify_one();
  return deferred.Promise();
}

void Device::worker_loop() {
  for (;;) {
    Task task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    std::string error;
    if (!sticky_error_.empty()) {
      // An earlier op failed: skip this one; a promise-bearing task reports it.
      if (task.completion) {
        error = sticky_error_ + " (reported by " + task.op + "; the ops enqueued after the failing one were skipped)";
        sticky_error_.clear();
      }
    } else {
      try {
        task.run();
      } catch (const std::bad_alloc&) {
        error = std::string(task.op) + ": out of memory";
      } catch (const std::exception& e) {
        error = std::string(task.op) + ": " + e.what();
      } catch (...) {
        error = std::string(task.op) + ": unknown native error";
      }
      if (!error.empty() && !task.completion) {
        sticky_error_ = std::move(error);
        error.clear();
      }
    }
    task.run = nullptr;  // drop the op's tensors now
    if (task.completion) {
      auto* done = new Completion{task.completion, std::move(error)};
      if (tsfn_.NonBlockingCall(done) != napi_ok) delete done;
    }
  }
}

void Device::on_completion(Napi::Env env, Napi::Function, Device* device, Completion* done) {
  std::unique_ptr<Completion> owned(done);
  if (env == nullptr || device == nullptr) return;  // torn down: nothing to settle
  auto it = device->pending_.find(done->id);
  if (it == device->pending_.end()) return;
  Pending pending = std::move(it->second);
  device->pending_.erase(it);
  std::shared_ptr<Device> hold;  // declared after `pending`: destroyed first
  if (device->pending_.empty()) {
    device->tsfn_.Unref(env);
    hold = std::move(device->self_);
  }
  try {
    if (done->error.empty()) {
      pending.deferred.Resolve(pending.make_value ? pending.make_value(env) : env.Undefined());
    } else {
      pending.deferred.Reject(Napi::Error::New(env, done->error).Value());
    }
  } catch (const Napi::Error& e) {
    pending.deferred.Reject(e.Value());
  }
  // `hold` may destroy the device when this returns; nothing touches it after.
}

// ---------------------------------------------------------------------------
// Shared numeric helpers

void parallel_sgemm(ThreadPool& pool, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX || lda > INT_MAX || ldb > INT_MAX || ldc > INT_MAX)
    throw OpError("matrix dimension above 2^31-1 is not supported by BLAS");
  if (K <= 0) {  // C = beta * C
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
  const CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
  const bool split_n = N >= M;
  const int64_t extent = split_n ? N : M;
  // Parts of at least 32 rows/columns, boundaries on multiples of 16.
  const int parts = static_cast<int>(std::min<int64_t>(pool.size(), std::max<int64_t>(1, extent / 32)));
  auto boundary = [&](int p) -> int64_t {
    if (p >= parts) return extent;
    return std::min(extent, (extent * p / parts) / 16 * 16);
  };
  auto slice = [&](int64_t b, int64_t e) {
    if (e <= b) return;
    if (split_n) {
      const float* Bs = trans_b ? B + b * ldb : B + b;
      cblas_sgemm(CblasRowMajor, ta, tb, (int)M, (int)(e - b), (int)K, alpha, A, (int)lda, Bs, (int)ldb, beta, C + b,
                  (int)ldc);
    } else {
      const float* As = trans_a ? A + b : A + b * lda;
      cblas_sgemm(CblasRowMajor, ta, tb, (int)(e - b), (int)N, (int)K, alpha, As, (int)lda, B, (int)ldb, beta,
                  C + b * ldc, (int)ldc);
    }
  };
  if (parts == 1) {
    slice(0, extent);
    return;
  }
  pool.run([&](int tid) {
    if (tid < parts) slice(boundary(tid), boundary(tid + 1));
  });
}

void transpose(ThreadPool& pool, const float* x, int64_t rows, int64_t cols, float* xT) {
  if (rows == 1 || cols == 1) {
    std::memcpy(xT, x, sizeof(float) * rows * cols);
    return;
  }
  constexpr int64_t TILE = 32;
  const int64_t col_tiles = (cols + TILE - 1) / TILE;
  pool.parallel_for(col_tiles, 1, [&](int64_t t0, int64_t t1, int) {
    for (int64_t ct = t0; ct < t1; ++ct) {
      const int64_t c0 = ct * TILE, c1 = std::min(cols, c0 + TILE);
      for (int64_t r0 = 0; r0 < rows; r0 += TILE) {
        const int64_t r1 = std::min(rows, r0 + TILE);
        for (int64_t c = c0; c < c1; ++c)
          for (int64_t r = r0; r < r1; ++r) xT[c * rows + r] = x[r * cols + c];
      }
    }
  });
}

// ---------------------------------------------------------------------------
// JS classes

namespace {

common::ClassRegistry g_classes;

common::ClassRegistry::Classes& classes(napi_env env) { return g_classes.at(env); }

}  // namespace

class CpuTensor : public common::TensorWrap<CpuTensor, Device, Tensor> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineTensorClass(env, "CpuTensor", &CpuTensor::Read, &CpuTensor::Write, &CpuTensor::Dispose);
  }

  static Napi::Object Create(Napi::Env env, std::shared_ptr<Device> device, Tensor tensor) {
    return TensorWrap::Create(g_classes, env, std::move(device), std::move(tensor));
  }

  explicit CpuTensor(const Napi::CallbackInfo& info) : TensorWrap(info, "CpuTensor") {}

 private:
  // read(): Promise<TypedArray>, a copy taken after every op enqueued before it.
  Napi::Value Read(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor t = live(env, "read");
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, t.bytes());
    void* dst = ab.Data();
    auto ref = std::make_shared<Napi::Reference<Napi::ArrayBuffer>>(Napi::Persistent(ab));
    return device_->enqueue_settled(
        env, "read",
        [t, dst] {
          if (t.bytes()) std::memcpy(dst, t.buffer->data(), t.bytes());
        },
        [ref, dtype = t.dtype, size = t.size](Napi::Env e) {
          return typed_array_for(e, dtype, ref->Value(), static_cast<size_t>(size));
        });
  }

  // write(typedArray): copies the array now (into a staging block) and into the
  // tensor in queue order, so ops enqueued earlier still see the old contents.
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Tensor& t = live(env, "write");
    const Napi::TypedArray src = common::parse_write_source(info, t.dtype, t.shape, t.size);
    std::shared_ptr<Buffer> staging;
    try {
      staging = std::make_shared<Buffer>(device_->allocator(), t.bytes());
    } catch (const std::bad_alloc&) {
      throw Napi::RangeError::New(env, "tensor.write: out of memory for the staging copy");
    }
    if (t.bytes())
      std::memcpy(staging->data(), common::typed_array_bytes(src), t.bytes());
    device_->enqueue("write", [t, staging] {
      if (t.bytes()) std::memcpy(t.buffer->data(), staging->data(), t.bytes());
    });
    return env.Undefined();
  }

  // dispose(): drops this object's share of the memory now (queued ops keep theirs).
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    tensor_.reset();
    return info.Env().Undefined();
  }
};

class CpuBackend : public Napi::ObjectWrap<CpuBackend> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "CpuBackend",
                       {
                           InstanceMethod<&CpuBackend::NewTensor>("tensor"),
                           InstanceMethod<&CpuBackend::FromArray>("fromArray"),
                           InstanceMethod<&CpuBackend::Sync>("sync"),
                           InstanceMethod<&CpuBackend::MemoryStats>("memoryStats"),
                           InstanceMethod<&CpuBackend::ResetPeakMemory>("resetPeakMemory"),
                           InstanceAccessor<&CpuBackend::GetThreads>("threads"),
                       });
  }

  explicit CpuBackend(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CpuBackend>(info) {
    Napi::Env env = info.Env();
    int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    bool int8_topk = false;
    if (info.Length() > 0 && info[0].IsObject()) {
      Napi::Value v = info[0].As<Napi::Object>().Get("threads");
      if (!v.IsUndefined()) {
        double x = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
        if (!(x >= 1 && x <= 1024 && x == std::floor(x)))
          throw Napi::RangeError::New(env, "CpuBackend: option threads must be an integer in [1, 1024], got " + v.ToString().Utf8Value());
        threads = static_cast<int>(x);
      }
      Napi::Value q = info[0].As<Napi::Object>().Get("int8TopK");
      if (!q.IsUndefined()) {
        if (!q.IsBoolean()) throw Napi::TypeError::New(env, "CpuBackend: option int8TopK must be a boolean");
        int8_topk = q.As<Napi::Boolean>().Value();
      }
    }
    device_ = std::make_shared<Device>(env, threads);
    device_->set_int8_topk(int8_topk);
  }

  const std::shared_ptr<Device>& device() const { return device_; }

 private:
  Napi::Value NewTensor(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    DType dtype = parse_dtype(env, info[0], "backend.tensor");
    Tensor t = device_->allocate(dtype, parse_shape(env, info[1], "backend.tensor"));
    // Poison in queue order so that reading before writing shows NaN / -1.
    device_->enqueue("tensor", [t] {
      if (t.bytes()) std::memset(t.buffer->data(), 0xFF, t.bytes());
    });
    return CpuTensor::Create(env, device_, std::move(t));
  }

  Napi::Value FromArray(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    common::HostArray src = common::parse_from_array(info);
    Tensor t = device_->allocate(src.dtype, std::move(src.shape));
    // A fresh buffer that no queued op can see yet: copy right away.
    if (t.bytes())
      std::memcpy(t.buffer->data(), common::typed_array_bytes(src.array), t.bytes());
    return CpuTensor::Create(env, device_, std::move(t));
  }

  Napi::Value Sync(const Napi::CallbackInfo& info) {
    return device_->enqueue_settled(info.Env(), "sync", [] {}, nullptr);
  }

  Napi::Value MemoryStats(const Napi::CallbackInfo& info) { return common::memory_stats(info.Env(), *device_->allocator()); }

  Napi::Value ResetPeakMemory(const Napi::CallbackInfo& info) {
    device_->allocator()->reset_peak();
    return info.Env().Undefined();
  }

  Napi::Value GetThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), device_->threads()); }

  std::shared_ptr<Device> device_;
};

// ---------------------------------------------------------------------------
// OpCall

OpCall::OpCall(const Napi::CallbackInfo& info, const char* op) : OpArgs(info, op) {
  Napi::Env env = info.Env();
  Napi::Value b = info.Length() > 0 ? info[0] : env.Undefined();
  if (!b.IsObject() || !b.As<Napi::Object>().InstanceOf(classes(env).backend.Value()))
    throw Napi::TypeError::New(env, std::string(op) + ": the first argument must be a CpuBackend");
  device_ = CpuBackend::Unwrap(b.As<Napi::Object>())->device();
}

Tensor OpCall::tensor(size_t index, const char* name) const {
  Napi::Value v = index < info_.Length() ? info_[index] : env().Undefined();
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(classes(env()).tensor.Value()))
    type_error(std::string("argument ") + name + " must be a tensor, got " +
               (v.IsNull() ? "null" : v.IsUndefined() ? "undefined" : v.IsObject() ? "another object" : v.ToString().Utf8Value()));
  CpuTensor* t = CpuTensor::Unwrap(v.As<Napi::Object>());
  if (t->device() != device_) type_error(std::string("argument ") + name + " is a tensor of another backend");
  if (!t->tensor()) type_error(std::string("argument ") + name + " was disposed");
  return *t->tensor();
}

std::optional<Tensor> OpCall::optional_tensor(size_t index, const char* name) const {
  if (index >= info_.Length() || info_[index].IsNull() || info_[index].IsUndefined()) return std::nullopt;
  return tensor(index, name);
}

// ---------------------------------------------------------------------------
// Elementary ops on tensors (op functions like the families': addon.fill(backend, ...))

// fill(backend, t, value): every element = value (an integer for int32/uint32 tensors).
Napi::Value Fill(const Napi::CallbackInfo& info) {
  OpCall call(info, "fill");
  Tensor t = call.tensor(1, "t");
  const uint32_t bits = common::parse_fill_bits(call, 2, t.dtype);
  call.enqueue([t, bits] {
    uint32_t* p = t.data<uint32_t>();
    std::fill(p, p + t.size, bits);
  });
  return info.Env().Undefined();
}

// copy(backend, src, dst): same dtype and element count (shapes may differ: a reshape copy).
Napi::Value Copy(const Napi::CallbackInfo& info) {
  OpCall call(info, "copy");
  Tensor src = call.tensor(1, "src"), dst = call.tensor(2, "dst");
  call.expect_dtype(dst, "dst", src.dtype);
  if (src.size != dst.size)
    call.range_error("dst has " + std::to_string(dst.size) + " elements " + shape_string(dst.shape) + ", src has " +
                     std::to_string(src.size) + " " + shape_string(src.shape));
  call.enqueue([src, dst] {
    if (!src.same_storage(dst) && src.bytes()) std::memcpy(dst.buffer->data(), src.buffer->data(), src.bytes());
  });
  return info.Env().Undefined();
}


void register_backend_classes(Napi::Env env, Napi::Object exports) {
  Napi::Function backend = CpuBackend::Define(env);
  g_classes.add(env, backend, CpuTensor::Define(env));
  exports.Set("CpuBackend", backend);
  exports.Set("fill", Napi::Function::New(env, Fill, "fill"));
  exports.Set("copy", Napi::Function::New(env, Copy, "copy"));
}

}  // namespace xmc::cpu

namespace xmc {
void register_backend(Napi::Env env, Napi::Object exports) { cpu::register_backend_classes(env, exports); }
}  // namespace xmc
