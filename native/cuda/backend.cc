// CUDA backend: allocator, pinned staging, the stream and its completion
// thread (CudaDevice), the JS classes CudaBackend and CudaTensor, argument
// checks (OpCall) and the elementary ops fill / copy. The execution model is
// described in backend.h; the op families are the *_ops.cc files (launchers)
// over the *.cu files (kernels).
//
// JS surface (wrapped by src/native/cuda-backend.ts):
//   new CudaBackend({device?, tf32?, memoryLimit?, bf16Gathers?, int8TopK?})
//     .tensor(dtype, shape)          -> CudaTensor, contents poisoned (0xFF bytes: NaN / -1 / 0xFFFFFFFF)
//     .fromArray(typedArray, shape?) -> CudaTensor, a copy
//     .sync()                        -> Promise<void>
//     .memoryStats(), .resetPeakMemory(), .deviceMemory() -> {freeBytes, totalBytes}
//     .info() -> {device, name, multiprocessors, computeCapability, cublas, tf32}, .threads (multiprocessors)
//   addon.cuda.fill(backend, t, value), addon.cuda.copy(backend, src, dst)
//   CudaTensor: .dtype .shape .size .disposed, .read(), .write(typedArray), .dispose()
#include "backend.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <sstream>

#include "../register.h"
#include "common/js_classes.h"

namespace xmc::cuda {

std::string index_text(DType dtype, uint32_t bits) {
  return dtype == DType::Int32 ? std::to_string(static_cast<int32_t>(bits)) : std::to_string(bits);
}

// ---------------------------------------------------------------------------
// Allocator / Buffer

static size_t round_up_64(size_t bytes) { return (bytes + 63) / 64 * 64; }

Allocator::Allocator(int device) : device_(device) {
  cudaMemPoolProps props;
  std::memset(&props, 0, sizeof props);
  props.allocType = cudaMemAllocationTypePinned;
  props.handleTypes = cudaMemHandleTypeNone;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = device;
  check(cudaMemPoolCreate(&pool_, &props), "CudaBackend", "cudaMemPoolCreate");
  // Keep freed memory in the pool (no return to the driver at every sync): training steps
  // allocate and free the same scratch sizes over and over.
  uint64_t threshold = UINT64_MAX;
  check(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &threshold), "CudaBackend",
        "cudaMemPoolSetAttribute");
}

Allocator::~Allocator() {
  if (pool_) cudaMemPoolDestroy(pool_);  // released for good once its last block is freed
}

void* Allocator::allocate(size_t bytes, cudaStream_t stream, const char* op) {
  if (bytes == 0) return nullptr;
  const size_t rounded = round_up_64(bytes);
  if (limit_ > 0 && current_.load() + static_cast<int64_t>(rounded) > limit_)
    throw DeviceOutOfMemory(std::string(op) + ": allocating " + std::to_string(bytes) + " bytes would pass the GPU memory limit of " +
                            std::to_string(limit_) + " bytes (" + std::to_string(current_.load()) + " in use)");
  void* p = nullptr;
  cudaError_t err = cudaMallocFromPoolAsync(&p, rounded, pool_, stream);
  if (err == cudaErrorMemoryAllocation) {  // give the pool's cached blocks back and try once more
    cudaGetLastError();
    cudaStreamSynchronize(stream);
    cudaMemPoolTrimTo(pool_, 0);
    err = cudaMallocFromPoolAsync(&p, rounded, pool_, stream);
  }
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    throw DeviceOutOfMemory(std::string(op) + ": out of GPU memory allocating " + std::to_string(bytes) + " bytes");
  }
  check(err, op, "cudaMallocFromPoolAsync");
  const int64_t now = current_.fetch_add(static_cast<int64_t>(rounded)) + static_cast<int64_t>(rounded);
  int64_t peak = peak_.load();
  while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
  }
  live_.fetch_add(1);
  return p;
}

void Allocator::release(void* p, size_t bytes, cudaStream_t stream) noexcept {
  if (!p) return;
  cudaSetDevice(device_);
  cudaFreeAsync(p, stream);  // in stream order: after every op enqueued so far that may use it
  current_.fetch_sub(static_cast<int64_t>(round_up_64(bytes)));
  live_.fetch_sub(1);
}

Buffer::Buffer(std::shared_ptr<CudaDevice> device, size_t bytes, const char* op) : device_(std::move(device)), bytes_(bytes) {
  data_ = device_->allocator().allocate(bytes, device_->stream(), op);
}

Buffer::~Buffer() { device_->allocator().release(data_, bytes_, device_->stream()); }

// ---------------------------------------------------------------------------
// PinnedPool

PinnedPool::~PinnedPool() {
  for (void* p : all_) cudaFreeHost(p);
}

std::shared_ptr<void> PinnedPool::acquire(size_t bytes, const char* op) {
  size_t cls = 256;
  while (cls < bytes) cls <<= 1;
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& list = free_[cls];
    if (!list.empty()) {
      p = list.back();
      list.pop_back();
    }
  }
  if (!p) {
    cudaError_t err = cudaHostAlloc(&p, cls, cudaHostAllocDefault);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      throw DeviceOutOfMemory(std::string(op) + ": out of pinned host memory allocating " + std::to_string(cls) + " bytes");
    }
    check(err, op, "cudaHostAlloc");
    std::lock_guard<std::mutex> lock(mu_);
    all_.push_back(p);
  }
  std::shared_ptr<PinnedPool> self = shared_from_this();
  return std::shared_ptr<void>(p, [self, cls](void* q) {
    std::lock_guard<std::mutex> lock(self->mu_);
    self->free_[cls].push_back(q);
  });
}

// ---------------------------------------------------------------------------
// CudaDevice

CudaDevice::CudaDevice(Napi::Env env, int ordinal, bool tf32) : ordinal_(ordinal), tf32_(tf32), env_(env) {
  const char* op = "CudaBackend";
  check(cudaSetDevice(ordinal_), op, "cudaSetDevice");
  cudaDeviceProp prop;
  check(cudaGetDeviceProperties(&prop, ordinal_), op, "cudaGetDeviceProperties");
  multiprocessors_ = prop.multiProcessorCount;
  cc_major_ = prop.major;
  cc_minor_ = prop.minor;
  name_ = prop.name;
  check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), op, "cudaStreamCreateWithFlags");
  check(cudaMalloc(&status_, sizeof(DeviceStatus)), op, "cudaMalloc");
  check(cudaMemsetAsync(status_, 0, sizeof(DeviceStatus), stream_), op, "cudaMemsetAsync");
  allocator_ = std::make_unique<Allocator>(ordinal_);
  pinned_ = std::make_shared<PinnedPool>();
  tsfn_ = Tsfn::New(env, "xmc-cuda-backend", 0, 1, this);
  tsfn_.Unref(env);  // referenced only while promises are pending
  if (napi_add_env_cleanup_hook(env, cleanup_hook, this) == napi_ok) hook_registered_ = true;
  completer_ = std::thread([this] { completion_loop(); });
}

CudaDevice::~CudaDevice() {
  shutdown();
  if (hook_registered_) napi_remove_env_cleanup_hook(env_, cleanup_hook, this);
  cudaSetDevice(ordinal_);
  cudaStreamSynchronize(stream_);  // host functions holding pinned blocks have run
  if (cublas_) destroy_cublas(cublas_);
  if (cublas_workspace_) allocator_->release(cublas_workspace_, cublas_workspace_bytes_, stream_);
  cudaStreamSynchronize(stream_);
  if (status_) cudaFree(status_);
  allocator_.reset();
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaDevice::cleanup_hook(void* arg) {
  auto* device = static_cast<CudaDevice*>(arg);
  device->hook_registered_ = false;
  device->shutdown();
}

void CudaDevice::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (completer_.joinable()) completer_.join();
  for (Wait& w : waits_) cudaEventDestroy(w.event);
  waits_.clear();
  tsfn_.Abort();
}

void CudaDevice::activate(const char* op) const { check(cudaSetDevice(ordinal_), op, "cudaSetDevice"); }

Tensor CudaDevice::allocate(DType dtype, std::vector<int64_t> shape, const char* op) {
  Tensor t;
  t.dtype = dtype;
  t.size = 1;
  for (int64_t d : shape) t.size *= d;
  t.shape = std::move(shape);
  t.buffer = std::make_shared<Buffer>(shared_from_this(), t.bytes(), op);
  return t;
}

std::shared_ptr<Buffer> CudaDevice::scratch(size_t bytes, const char* op) {
  return std::make_shared<Buffer>(shared_from_this(), bytes, op);
}

uint32_t CudaDevice::register_check(Formatter format) {
  const uint32_t serial = ++next_serial_;
  formatters_[serial] = std::move(format);
  return serial;
}

void CudaDevice::release_after(std::shared_ptr<void> block, const char* op) {
  auto* holder = new std::shared_ptr<void>(std::move(block));
  cudaError_t err = cudaLaunchHostFunc(
      stream_, [](void* p) { delete static_cast<std::shared_ptr<void>*>(p); }, holder);
  if (err != cudaSuccess) {
    delete holder;
    check(err, op, "cudaLaunchHostFunc");
  }
}

void CudaDevice::host_function(std::function<void()> fn, const char* op) {
  auto* holder = new std::function<void()>(std::move(fn));
  cudaError_t err = cudaLaunchHostFunc(
      stream_,
      [](void* p) {
        std::unique_ptr<std::function<void()>> f(static_cast<std::function<void()>*>(p));
        (*f)();
      },
      holder);
  if (err != cudaSuccess) {
    delete holder;
    check(err, op, "cudaLaunchHostFunc");
  }
}

Napi::Promise CudaDevice::settle(Napi::Env env, const char* op, MakeValue make_value, uint32_t own_serial,
                                 std::shared_ptr<void> keep) {
  if (shut_down_) throw Napi::Error::New(env, std::string(op) + ": the backend has been shut down");
  activate(op);
  std::shared_ptr<void> snapshot = pinned_->acquire(sizeof(DeviceStatus), op);
  check(cudaMemcpyAsync(snapshot.get(), status_, sizeof(DeviceStatus), cudaMemcpyDeviceToHost, stream_), op,
        "cudaMemcpyAsync");
  check(cudaMemsetAsync(status_, 0, sizeof(DeviceStatus), stream_), op, "cudaMemsetAsync");
  cudaEvent_t event;
  check(cudaEventCreateWithFlags(&event, cudaEventDisableTiming | cudaEventBlockingSync), op, "cudaEventCreate");
  cudaError_t err = cudaEventRecord(event, stream_);
  if (err != cudaSuccess) {
    cudaEventDestroy(event);
    check(err, op, "cudaEventRecord");
  }
  auto deferred = Napi::Promise::Deferred::New(env);
  const uint64_t id = next_completion_++;
  if (pending_.empty()) {
    tsfn_.Ref(env);  // keep the event loop alive until the promise settles
    self_ = shared_from_this();
  }
  pending_.emplace(id, Pending{deferred, std::move(make_value), std::move(snapshot), std::move(keep), op, own_serial,
                               next_serial_});
  {
    std::lock_guard<std::mutex> lock(mu_);
    waits_.push_back(Wait{event, id});
  }
  cv_.notify_one();
  return deferred.Promise();
}

void CudaDevice::completion_loop() {
  cudaSetDevice(ordinal_);
  for (;;) {
    Wait w;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !waits_.empty(); });
      if (stop_) return;
      w = waits_.front();
      waits_.pop_front();
    }
    const cudaError_t err = cudaEventSynchronize(w.event);
    cudaEventDestroy(w.event);
    auto* done = new Completion{w.id, err == cudaSuccess ? std::string()
                                                         : std::string(cudaGetErrorString(err)) + " (" +
                                                               cudaGetErrorName(err) + ")"};
    if (tsfn_.NonBlockingCall(done) != napi_ok) delete done;
  }
}

void CudaDevice::on_completion(Napi::Env env, Napi::Function, CudaDevice* device, Completion* done) {
  std::unique_ptr<Completion> owned(done);
  if (env == nullptr || device == nullptr) return;
  auto it = device->pending_.find(done->id);
  if (it == device->pending_.end()) return;
  Pending pending = std::move(it->second);
  device->pending_.erase(it);
  std::shared_ptr<CudaDevice> hold;  // declared after `pending`: destroyed first
  if (device->pending_.empty()) {
    device->tsfn_.Unref(env);
    hold = std::move(device->self_);
  }
  std::string error;
  if (!done->cuda_error.empty()) {
    error = std::string(pending.op) + ": the GPU reported an error while running the queued ops: " + done->cuda_error +
            " (the CUDA context cannot be used any more; restart the process)";
  } else {
    const auto* s = static_cast<const DeviceStatus*>(pending.snapshot.get());
    if (s->code != 0) {
      auto f = device->formatters_.find(s->serial);
      std::string reason = f != device->formatters_.end() ? f->second(*s) : "an op failed (no formatter registered)";
      error = s->serial == pending.own_serial
                  ? reason
                  : reason + " (reported by " + pending.op + "; the ops enqueued after the failing one were skipped)";
    }
  }
  device->formatters_.erase(device->formatters_.begin(), device->formatters_.upper_bound(pending.checks_upto));
  try {
    if (error.empty()) {
      pending.deferred.Resolve(pending.make_value ? pending.make_value(env) : env.Undefined());
    } else {
      pending.deferred.Reject(Napi::Error::New(env, error).Value());
    }
  } catch (const Napi::Error& e) {
    pending.deferred.Reject(e.Value());
  }
}

// ---------------------------------------------------------------------------
// JS classes

namespace {

common::ClassRegistry g_classes;

common::ClassRegistry::Classes& classes(napi_env env) { return g_classes.at(env); }

}  // namespace

Napi::Value guarded(const Napi::CallbackInfo& info, const char* op, const std::function<Napi::Value()>& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const DeviceOutOfMemory& e) {
    throw Napi::RangeError::New(info.Env(), e.what());
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(info.Env(), std::string(op) + ": out of host memory");
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

class CudaTensor : public common::TensorWrap<CudaTensor, CudaDevice, Tensor> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineTensorClass(env, "CudaTensor", &CudaTensor::Read, &CudaTensor::Write, &CudaTensor::Dispose);
  }

  static Napi::Object Create(Napi::Env env, std::shared_ptr<CudaDevice> device, Tensor tensor) {
    return TensorWrap::Create(g_classes, env, std::move(device), std::move(tensor));
  }

  explicit CudaTensor(const Napi::CallbackInfo& info) : TensorWrap(info, "CudaTensor") {}

 private:
  // read(): a copy taken after every op enqueued before it (device -> pinned -> ArrayBuffer on the JS thread).
  Napi::Value Read(const Napi::CallbackInfo& info) {
    return guarded(info, "read", [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      Tensor t = live(env, "read");
      device_->activate("read");
      std::shared_ptr<void> staging;
      if (t.bytes()) {
        staging = device_->pinned().acquire(t.bytes(), "read");
        check(cudaMemcpyAsync(staging.get(), t.data<void>(), t.bytes(), cudaMemcpyDeviceToHost, device_->stream()),
              "read", "cudaMemcpyAsync");
      }
      return device_->settle(
          env, "read",
          [staging, dtype = t.dtype, size = t.size, bytes = t.bytes()](Napi::Env e) {
            Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(e, bytes);
            if (bytes) std::memcpy(ab.Data(), staging.get(), bytes);
            return typed_array_for(e, dtype, ab, static_cast<size_t>(size));
          },
          0, staging);
    });
  }

  // write(typedArray): copied now into pinned memory, lands in the tensor in queue order (a halt-aware copy from
  // a device staging block, so that a write enqueued after a failing op is skipped like every other op).
  Napi::Value Write(const Napi::CallbackInfo& info) {
    return guarded(info, "write", [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      const Tensor& t = live(env, "write");
      const Napi::TypedArray src = common::parse_write_source(info, t.dtype, t.shape, t.size);
      if (!t.bytes()) return env.Undefined();
      device_->activate("write");
      std::shared_ptr<void> pinned = device_->pinned().acquire(t.bytes(), "write");
      std::memcpy(pinned.get(), common::typed_array_bytes(src), t.bytes());
      std::shared_ptr<Buffer> staging = device_->scratch(t.bytes(), "write");
      check(cudaMemcpyAsync(staging->data(), pinned.get(), t.bytes(), cudaMemcpyHostToDevice, device_->stream()), "write",
            "cudaMemcpyAsync");
      device_->release_after(pinned, "write");
      copy_u32(device_->launch("write"), static_cast<const uint32_t*>(staging->data()), t.data<uint32_t>(), t.size);
      return env.Undefined();
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (tensor_) device_->activate("dispose");
    tensor_.reset();
    return info.Env().Undefined();
  }
};

class CudaBackend : public Napi::ObjectWrap<CudaBackend> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "CudaBackend",
                       {
                           InstanceMethod<&CudaBackend::NewTensor>("tensor"),
                           InstanceMethod<&CudaBackend::FromArray>("fromArray"),
                           InstanceMethod<&CudaBackend::Sync>("sync"),
                           InstanceMethod<&CudaBackend::MemoryStats>("memoryStats"),
                           InstanceMethod<&CudaBackend::ResetPeakMemory>("resetPeakMemory"),
                           InstanceMethod<&CudaBackend::DeviceMemory>("deviceMemory"),
                           InstanceMethod<&CudaBackend::Info>("info"),
                           InstanceAccessor<&CudaBackend::GetThreads>("threads"),
                       });
  }

  explicit CudaBackend(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CudaBackend>(info) {
    Napi::Env env = info.Env();
    int ordinal = 0;
    bool tf32 = false;
    int64_t memory_limit = 0;
    bool bf16_gathers = false;
    bool int8_topk = false;
    if (info.Length() > 0 && info[0].IsObject()) {
      Napi::Object o = info[0].As<Napi::Object>();
      Napi::Value d = o.Get("device");
      if (!d.IsUndefined()) {
        double x = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : -1;
        int count = 0;
        cudaGetDeviceCount(&count);
        if (!(x >= 0 && x < count && x == std::floor(x)))
          throw Napi::RangeError::New(env, "CudaBackend: option device must be an integer in [0, " + std::to_string(count) +
                                               "), got " + d.ToString().Utf8Value());
        ordinal = static_cast<int>(x);
      }
      Napi::Value t = o.Get("tf32");
      if (!t.IsUndefined()) {
        if (!t.IsBoolean()) throw Napi::TypeError::New(env, "CudaBackend: option tf32 must be a boolean");
        tf32 = t.As<Napi::Boolean>().Value();
      }
      Napi::Value h = o.Get("bf16Gathers");
      if (!h.IsUndefined()) {
        if (!h.IsBoolean()) throw Napi::TypeError::New(env, "CudaBackend: option bf16Gathers must be a boolean");
        bf16_gathers = h.As<Napi::Boolean>().Value();
      }
      Napi::Value q = o.Get("int8TopK");
      if (!q.IsUndefined()) {
        if (!q.IsBoolean()) throw Napi::TypeError::New(env, "CudaBackend: option int8TopK must be a boolean");
        int8_topk = q.As<Napi::Boolean>().Value();
      }
      Napi::Value m = o.Get("memoryLimit");
      if (!m.IsUndefined()) {
        const double x = m.IsNumber() ? m.As<Napi::Number>().DoubleValue() : -1;
        if (!(x >= 1 && x <= 9007199254740991.0 && x == std::floor(x)))
          throw Napi::RangeError::New(env, "CudaBackend: option memoryLimit must be a whole number of bytes >= 1, got " +
                                               m.ToString().Utf8Value());
        memory_limit = static_cast<int64_t>(x);
      }
    }
    try {
      device_ = std::make_shared<CudaDevice>(env, ordinal, tf32);
      device_->allocator().set_limit(memory_limit);
      device_->set_bf16_gathers(bf16_gathers);
      device_->set_int8_topk(int8_topk);
    } catch (const Napi::Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
  }

  const std::shared_ptr<CudaDevice>& device() const { return device_; }

 private:
  Napi::Value NewTensor(const Napi::CallbackInfo& info) {
    return guarded(info, "backend.tensor", [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      DType dtype = parse_dtype(env, info[0], "backend.tensor");
      std::vector<int64_t> shape = parse_shape(env, info[1], "backend.tensor");
      device_->activate("backend.tensor");
      Tensor t = allocate(env, dtype, std::move(shape), "backend.tensor");
      if (t.bytes()) check(cudaMemsetAsync(t.data<void>(), 0xFF, t.bytes(), device_->stream()), "backend.tensor", "cudaMemsetAsync");
      return CudaTensor::Create(env, device_, std::move(t));
    });
  }

  Tensor allocate(Napi::Env env, DType dtype, std::vector<int64_t> shape, const char* where) {
    try {
      return device_->allocate(dtype, shape, where);
    } catch (const DeviceOutOfMemory& e) {
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      const int64_t limit = device_->allocator().limit();
      const std::string why = limit > 0 && std::string(e.what()).find("limit") != std::string::npos
                                  ? ": it would pass the GPU memory limit of " + std::to_string(limit) + " bytes (" +
                                        std::to_string(device_->allocator().current_bytes()) + " in use)"
                                  : "";
      throw Napi::RangeError::New(env, "out of GPU memory allocating a " + std::string(dtype_name(dtype)) + " tensor of shape " +
                                           shape_string(shape) + " (" + std::to_string(n * 4) + " bytes)" + why);
    }
  }

  Napi::Value FromArray(const Napi::CallbackInfo& info) {
    return guarded(info, "backend.fromArray", [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      common::HostArray src = common::parse_from_array(info);
      device_->activate("backend.fromArray");
      Tensor t = allocate(env, src.dtype, std::move(src.shape), "backend.fromArray");
      if (t.bytes()) {
        // A fresh buffer that no op can see yet: straight from pinned staging, not subject to failures.
        std::shared_ptr<void> pinned = device_->pinned().acquire(t.bytes(), "backend.fromArray");
        std::memcpy(pinned.get(), common::typed_array_bytes(src.array), t.bytes());
        check(cudaMemcpyAsync(t.data<void>(), pinned.get(), t.bytes(), cudaMemcpyHostToDevice, device_->stream()),
              "backend.fromArray", "cudaMemcpyAsync");
        device_->release_after(pinned, "backend.fromArray");
      }
      return CudaTensor::Create(env, device_, std::move(t));
    });
  }

  Napi::Value Sync(const Napi::CallbackInfo& info) {
    return guarded(info, "sync", [&]() -> Napi::Value { return device_->settle(info.Env(), "sync", nullptr); });
  }

  Napi::Value MemoryStats(const Napi::CallbackInfo& info) { return common::memory_stats(info.Env(), device_->allocator()); }

  Napi::Value ResetPeakMemory(const Napi::CallbackInfo& info) {
    device_->allocator().reset_peak();
    return info.Env().Undefined();
  }

  Napi::Value DeviceMemory(const Napi::CallbackInfo& info) {
    return guarded(info, "deviceMemory", [&]() -> Napi::Value {
      device_->activate("deviceMemory");
      size_t free_bytes = 0, total_bytes = 0;
      check(cudaMemGetInfo(&free_bytes, &total_bytes), "deviceMemory", "cudaMemGetInfo");
      Napi::Object o = Napi::Object::New(info.Env());
      o.Set("freeBytes", (double)free_bytes);
      o.Set("totalBytes", (double)total_bytes);
      return o;
    });
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("device", device_->ordinal());
    o.Set("name", device_->name());
    o.Set("multiprocessors", device_->multiprocessors());
    auto [major, minor] = device_->compute_capability();
    o.Set("computeCapability", std::to_string(major) + "." + std::to_string(minor));
    o.Set("cublas", have_cublas());
    o.Set("tf32", device_->tf32());
    o.Set("memoryLimit", static_cast<double>(device_->allocator().limit()));
    o.Set("bf16Gathers", device_->bf16_gathers());
    o.Set("int8TopK", device_->int8_topk());
    return o;
  }

  Napi::Value GetThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), device_->multiprocessors()); }

  std::shared_ptr<CudaDevice> device_;
};

// ---------------------------------------------------------------------------
// OpCall

OpCall::OpCall(const Napi::CallbackInfo& info, const char* op) : OpArgs(info, op) {
  Napi::Env env = info.Env();
  Napi::Value b = info.Length() > 0 ? info[0] : env.Undefined();
  if (!b.IsObject() || !b.As<Napi::Object>().InstanceOf(classes(env).backend.Value()))
    throw Napi::TypeError::New(env, std::string(op) + ": the first argument must be a CudaBackend");
  device_ = CudaBackend::Unwrap(b.As<Napi::Object>())->device();
  device_->activate(op);
}

Tensor OpCall::tensor(size_t index, const char* name) const {
  Napi::Value v = index < info_.Length() ? info_[index] : env().Undefined();
  if (v.IsObject() && !v.As<Napi::Object>().InstanceOf(classes(env()).tensor.Value()) &&
      v.As<Napi::Object>().Has("xmcForeignTensor"))
    type_error(std::string("argument ") + name + " is a tensor of another backend");
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(classes(env()).tensor.Value()))
    type_error(std::string("argument ") + name + " must be a tensor, got " +
               (v.IsNull() ? "null" : v.IsUndefined() ? "undefined" : v.IsObject() ? "another object" : v.ToString().Utf8Value()));
  CudaTensor* t = CudaTensor::Unwrap(v.As<Napi::Object>());
  if (t->device() != device_) type_error(std::string("argument ") + name + " is a tensor of another backend");
  if (!t->tensor()) type_error(std::string("argument ") + name + " was disposed");
  return *t->tensor();
}

std::optional<Tensor> OpCall::optional_tensor(size_t index, const char* name) const {
  if (index >= info_.Length() || info_[index].IsNull() || info_[index].IsUndefined()) return std::nullopt;
  return tensor(index, name);
}

// ---------------------------------------------------------------------------
// fill / copy

namespace {

Napi::Value Fill(const Napi::CallbackInfo& info) {
  return guarded(info, "fill", [&]() -> Napi::Value {
    OpCall call(info, "fill");
    Tensor t = call.tensor(1, "t");
    const uint32_t bits = common::parse_fill_bits(call, 2, t.dtype);
    fill_u32(call.launch(), t.data<uint32_t>(), t.size, bits);
    return info.Env().Undefined();
  });
}

Napi::Value Copy(const Napi::CallbackInfo& info) {
  return guarded(info, "copy", [&]() -> Napi::Value {
    OpCall call(info, "copy");
    Tensor src = call.tensor(1, "src"), dst = call.tensor(2, "dst");
    call.expect_dtype(dst, "dst", src.dtype);
    if (src.size != dst.size)
      call.range_error("dst has " + std::to_string(dst.size) + " elements " + shape_string(dst.shape) + ", src has " +
                       std::to_string(src.size) + " " + shape_string(src.shape));
    if (!src.same_storage(dst)) copy_u32(call.launch(), src.data<uint32_t>(), dst.data<uint32_t>(), src.size);
    return info.Env().Undefined();
  });
}

}  // namespace

void register_backend_classes(Napi::Env env, Napi::Object exports, Napi::Object ops) {
  Napi::Function backend = CudaBackend::Define(env);
  g_classes.add(env, backend, CudaTensor::Define(env));
  exports.Set("CudaBackend", backend);
  ops.Set("fill", Napi::Function::New(env, Fill, "fill"));
  ops.Set("copy", Napi::Function::New(env, Copy, "copy"));
}

// Defined in the *_ops.cc files.
void register_dense_ops(Napi::Env env, Napi::Object ops);
void register_rowsparse_ops(Napi::Env env, Napi::Object ops);
void register_loss_ops(Napi::Env env, Napi::Object ops);
void register_adam_ops(Napi::Env env, Napi::Object ops);
void register_rewire_ops(Napi::Env env, Napi::Object ops);
void register_topk_ops(Napi::Env env, Napi::Object ops);

}  // namespace xmc::cuda

namespace xmc {
void register_cuda(Napi::Env env, Napi::Object exports) {
  Napi::Object ops = Napi::Object::New(env);
  cuda::register_backend_classes(env, exports, ops);
  cuda::register_dense_ops(env, ops);
  cuda::register_rowsparse_ops(env, ops);
  cuda::register_loss_ops(env, ops);
  cuda::register_adam_ops(env, ops);
  cuda::register_rewire_ops(env, ops);
  cuda::register_topk_ops(env, ops);
  exports.Set("cuda", ops);
}
}  // namespace xmc
