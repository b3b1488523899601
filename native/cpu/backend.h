// CPU reference backend: the execution model shared by every op family.
//
//   Allocator  one per backend; every tensor, staging copy and op scratch
//              buffer goes through it, so memoryStats() (current / peak bytes)
//              is the whole native footprint of the backend.
//   Buffer     a block of the allocator, freed when its last owner drops it.
//              Owners are the JS tensor object AND every queued op that uses
//              it (shared_ptr), so JS may drop a tensor while ops still use it.
//   Tensor     a value type: shared buffer + dtype + shape (row-major, dense).
//   Device     the stream: a FIFO queue run by ONE native worker thread, in
//              order. Ops are checked on the JS thread (TypeError/RangeError
//              naming op and argument), then enqueued; the JS call returns at
//              once. Work inside an op is spread over a ThreadPool (the worker
//              takes part as thread 0). Results come back as Promises settled
//              on the JS thread through a thread-safe function.
//   Errors     an op that throws at run time records a sticky error; later
//              ops are skipped until the next promise-returning task (sync,
//              read, top-k), which rejects with "<op>: <reason>" and clears it.
//
// The CUDA backend implements the same model with a cudaStream_t as the queue
// and cudaLaunchHostFunc / events in place of the worker's completions.
#pragma once
#include <napi.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/op_args.h"
#include "common/splitmix.h"

namespace xmc::cpu {

// Lets hot loops be compiled for AVX2+FMA as well as for the baseline, chosen
// at load time (the project's CMake flags target plain x86-64). The clone is
// selected by CPU features: "arch=x86-64-v3" (GCC >= 12) means AVX2, FMA, BMI2
// on any vendor, whereas "arch=haswell" would test for an Intel Haswell model
// and leave AMD CPUs on the baseline code.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && !defined(XMC_NO_CLONES)
#define XMC_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#elif defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(XMC_NO_CLONES)
#define XMC_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define XMC_CLONES
#endif

// Dtypes, shapes and the op argument checks: shared with the CUDA backend (native/common/op_args.h).
using common::DType;
using common::dtype_name;
using common::parse_dtype;
using common::parse_shape;
using common::shape_string;
using common::typed_array_for;
inline size_t dtype_size(DType) { return 4; }

// ---------------------------------------------------------------------------
// Memory
class Allocator {
 public:
  // 64-byte aligned block of at least `bytes`; nullptr for 0 bytes. Throws std::bad_alloc.
  void* allocate(size_t bytes);
  void release(void* p, size_t bytes);
  int64_t current_bytes() const { return current_.load(); }
  int64_t peak_bytes() const { return peak_.load(); }
  int64_t live_allocations() const { return live_.load(); }
  void reset_peak() { peak_.store(current_.load()); }

 private:
  std::atomic<int64_t> current_{0}, peak_{0}, live_{0};
};

class Buffer {
 public:
  Buffer(std::shared_ptr<Allocator> allocator, size_t bytes);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  std::shared_ptr<Allocator> allocator_;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

struct Tensor {
  std::shared_ptr<Buffer> buffer;
  DType dtype = DType::Float32;
  std::vector<int64_t> shape;
  int64_t size = 0;  // number of elements

  template <class T>
  T* data() const { return static_cast<T*>(buffer->data()); }
  int rank() const { return static_cast<int>(shape.size()); }
  int64_t dim(int i) const { return shape[static_cast<size_t>(i)]; }
  size_t bytes() const { return static_cast<size_t>(size) * dtype_size(dtype); }
  bool same_storage(const Tensor& o) const { return buffer == o.buffer; }
};

// Raised by an op while it runs; reported as "<op>: <message>".
struct OpError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------
// Threads
class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  int size() const { return size_; }

  // Runs fn(tid) for every tid in [0, size) concurrently, the caller being tid 0;
  // returns when all are done. The first exception thrown is rethrown here.
  // Not reentrant: only the device's worker thread calls it, never from inside fn.
  void run(const std::function<void(int)>& fn);

  // fn(begin, end, tid) over [0, n) in chunks of at least `grain`, taken
  // dynamically (use for independent outputs).
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

 private:
  void loop(int tid);
  int size_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::function<void(int)>* job_ = nullptr;
  uint64_t generation_ = 0;
  int remaining_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

// Splits [0, n) into `parts` near-equal contiguous ranges; returns part p's [begin, end).
inline std::pair<int64_t, int64_t> static_range(int64_t n, int parts, int p) {
  int64_t base = n / parts, extra = n % parts;
  int64_t begin = p * base + std::min<int64_t>(p, extra);
  return {begin, begin + base + (p < extra ? 1 : 0)};
}

// ---------------------------------------------------------------------------
// The stream
class Device;

// A scratch block from the device allocator for the duration of one op.
class Scratch {
 public:
  Scratch(const std::shared_ptr<Allocator>& a, size_t bytes) : buffer_(a, bytes) {}
  template <class T>
  T* as() { return static_cast<T*>(buffer_.data()); }

 private:
  Buffer buffer_;
};

class Device : public std::enable_shared_from_this<Device> {
 public:
  using MakeValue = std::function<Napi::Value(Napi::Env)>;

  Device(Napi::Env env, int threads);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  uint64_t id() const { return id_; }
  int threads() const { return pool_.size(); }
  // ffiTopK / sparseTopK quantize their input to int8 per row first (option int8TopK: the CUDA
  // kernel's reference, native/cpu/topk.cc). Set once, at construction.
  bool int8_topk() const { return int8_topk_; }
  void set_int8_topk(bool on) { int8_topk_ = on; }
  ThreadPool& pool() { return pool_; }
  const std::shared_ptr<Allocator>& allocator() const { return allocator_; }
  Tensor allocate(DType dtype, std::vector<int64_t> shape);

  // Appends a task; returns at once. `run` executes on the worker thread.
  void enqueue(const char* op, std::function<void()> run);

  // Appends a task whose completion settles the returned promise: resolved with
  // make_value(env) (called on the JS thread) or rejected with the task's error
  // or with the sticky error of an earlier op. JS thread only.
  Napi::Promise enqueue_settled(Napi::Env env, const char* op, std::function<void()> run, MakeValue make_value);

  // Stops the worker (dropping tasks not yet started) and releases the
  // thread-safe function. Idempotent. JS thread only.
  void shutdown();

 private:
  bool int8_topk_ = false;
  struct Task {
    const char* op;
    std::function<void()> run;
    uint64_t completion = 0;  // 0: no promise
  };
  struct Completion {
    uint64_t id;
    std::string error;
  };
  struct Pending {
    Napi::Promise::Deferred deferred;
    MakeValue make_value;
  };
  static void on_completion(Napi::Env env, Napi::Function, Device* device, Completion* done);
  using Tsfn = Napi::TypedThreadSafeFunction<Device, Completion, on_completion>;
  static void cleanup_hook(void* arg);
  void worker_loop();

  uint64_t id_;
  napi_env env_;
  std::shared_ptr<Allocator> allocator_;
  ThreadPool pool_;
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  bool stop_ = false;
  bool shut_down_ = false;
  bool hook_registered_ = false;
  std::string sticky_error_;  // worker thread only
  Tsfn tsfn_;
  // JS thread only:
  uint64_t next_completion_ = 1;
  std::unordered_map<uint64_t, Pending> pending_;
  std::shared_ptr<Device> self_;  // keeps the device alive while promises are pending
};

// ---------------------------------------------------------------------------
// Argument checking for op entry points: addon.<op>(backend, ...args).
class OpCall : public common::OpArgs {
 public:
  OpCall(const Napi::CallbackInfo& info, const char* op);

  Device& device() const { return *device_; }
  const std::shared_ptr<Device>& device_ptr() const { return device_; }

  Tensor tensor(size_t index, const char* name) const;
  std::optional<Tensor> optional_tensor(size_t index, const char* name) const;  // null/undefined: none

  // Closures must capture the pool by pointer, never the Device itself: a
  // queued task owning its Device could end up destroying it on the worker.
  ThreadPool* pool() const { return &device_->pool(); }
  const std::shared_ptr<Allocator>& allocator() const { return device_->allocator(); }
  void enqueue(std::function<void()> run) const { device_->enqueue(op_, std::move(run)); }

 private:
  std::shared_ptr<Device> device_;
};


// ---------------------------------------------------------------------------
// Shared numeric helpers.

// C[M,N] = alpha * op(A) * op(B) + beta * C (row-major), split over the larger
// of M and N across the pool, each part a single-threaded OpenBLAS call.
void parallel_sgemm(ThreadPool& pool, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// x [rows, cols] -> xT [cols, rows], parallel.
void transpose(ThreadPool& pool, const float* x, int64_t rows, int64_t cols, float* xT);

// splitmix64 (mix64, SplitMix): one definition for both backends.
using common::mix64;
using common::SplitMix;

}  // namespace xmc::cpu
