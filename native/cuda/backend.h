// CUDA backend: the execution model shared by every op family (host side,
// compiled by the C++ compiler; the kernels are in the *.cu files).
//
//   Stream     one cudaStream_t per backend. Ops are checked on the JS thread
//              (TypeError / RangeError naming op and argument, the CPU
//              backend's messages) and their kernels launched on the stream
//              right away: the JS call returns without waiting for the GPU.
//   Allocator  one per backend over its own stream-ordered memory pool
//              (cudaMallocFromPoolAsync / cudaFreeAsync). Every tensor, op
//              scratch block and the cuBLAS workspace goes through it, so
//              memoryStats() (current / peak bytes, 64-byte blocks) is the
//              backend's whole device footprint, except the 64-byte status
//              block. A buffer is freed in stream order when its last owner
//              drops it, so JS may drop a tensor right after enqueuing an op
//              that uses it.
//   Promises   sync(), read() and top-k copy what they return into pinned
//              host memory, snapshot and clear the status block, and record
//              an event; a completion thread per backend waits on the events
//              (cudaEventSynchronize, blocking sync) and settles the promises
//              on the JS thread through a thread-safe function. The JS thread
//              never waits for the GPU.
//   Failures   checks that need the data run on the GPU and record the first
//              failure in the status block (kernels.h); every kernel returns
//              at once while it is set, so the ops after a failing one are
//              skipped, and the next promise rejects with the failing op's
//              message (formatted from the values found, by the formatter the
//              op registered under its serial) and clears it. A CUDA API
//              failure at enqueue time throws at once ("<op>: <call> failed:
//              <CUDA message>"); an asynchronous CUDA fault rejects the next
//              promise (the CUDA context is then unusable).
#pragma once
#include <cuda_runtime.h>
#include <napi.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/op_args.h"
#include "kernels.h"

namespace xmc::cuda {

// Dtypes, shapes and the op argument checks: shared with the CPU backend (native/common/op_args.h).
using common::DType;
using common::dtype_name;
using common::parse_dtype;
using common::parse_shape;
using common::shape_string;
using common::typed_array_for;

// "5000" for uint32, "-3" for an int32 index tensor holding a negative value.
std::string index_text(DType dtype, uint32_t bits);

class CudaDevice;

// Device memory of one backend: a stream-ordered pool, with counters.
class Allocator {
 public:
  explicit Allocator(int device);
  ~Allocator();
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;
  // At least `bytes` (256-byte aligned), usable in stream order on `stream`; nullptr for 0 bytes.
  // Throws DeviceOutOfMemory / CudaFailure.
  void* allocate(size_t bytes, cudaStream_t stream, const char* op);
  void release(void* p, size_t bytes, cudaStream_t stream) noexcept;
  int64_t current_bytes() const { return current_.load(); }
  int64_t peak_bytes() const { return peak_.load(); }
  int64_t live_allocations() const { return live_.load(); }
  void reset_peak() { peak_.store(current_.load()); }
  // At most `bytes` allocated at once (0: no limit): an allocation that would pass it throws
  // DeviceOutOfMemory naming the limit, so a run under a limit never exceeds it.
  void set_limit(int64_t bytes) { limit_ = bytes; }
  int64_t limit() const { return limit_; }

 private:
  int device_;
  int64_t limit_ = 0;
  cudaMemPool_t pool_ = nullptr;
  std::atomic<int64_t> current_{0}, peak_{0}, live_{0};
};

// A block of device memory, freed (in stream order) by its last owner.
class Buffer {
 public:
  Buffer(std::shared_ptr<CudaDevice> device, size_t bytes, const char* op);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  std::shared_ptr<CudaDevice> device_;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

struct Tensor {
  std::shared_ptr<Buffer> buffer;
  DType dtype = DType::Float32;
  std::vector<int64_t> shape;
  int64_t size = 0;

  template <class T>
  T* data() const { return static_cast<T*>(buffer->data()); }
  int64_t dim(int i) const { return shape[static_cast<size_t>(i)]; }
  size_t bytes() const { return static_cast<size_t>(size) * 4; }
  bool same_storage(const Tensor& o) const { return buffer == o.buffer; }
};

// Pinned host memory for transfers, recycled by power-of-two size class (kept until the backend goes).
class PinnedPool : public std::enable_shared_from_this<PinnedPool> {
 public:
  PinnedPool() = default;
  ~PinnedPool();
  // A block of at least `bytes`; dropping the last reference returns it to the pool (any thread).
  std::shared_ptr<void> acquire(size_t bytes, const char* op);

 private:
  std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;
  std::vector<void*> all_;
};

using Formatter = std::function<std::string(const DeviceStatus&)>;  // -> "<op>: <reason>"
using MakeValue = std::function<Napi::Value(Napi::Env)>;

class CudaDevice : public std::enable_shared_from_this<CudaDevice> {
 public:
  CudaDevice(Napi::Env env, int ordinal, bool tf32);
  ~CudaDevice();
  CudaDevice(const CudaDevice&) = delete;
  CudaDevice& operator=(const CudaDevice&) = delete;

  int ordinal() const { return ordinal_; }
  cudaStream_t stream() const { return stream_; }
  DeviceStatus* status() const { return status_; }
  Allocator& allocator() { return *allocator_; }
  PinnedPool& pinned() { return *pinned_; }
  bool tf32() const { return tf32_; }
  // The fused FFI kernels gather the layer input as bfloat16 (option bf16Gathers).
  bool bf16_gathers() const { return bf16_gathers_; }
  void set_bf16_gathers(bool on) { bf16_gathers_ = on; }
  // The fused top-k gathers its input quantized to int8 with a scale per row (option int8TopK).
  bool int8_topk() const { return int8_topk_; }
  void set_int8_topk(bool on) { int8_topk_ = on; }
  int multiprocessors() const { return multiprocessors_; }
  const std::string& name() const { return name_; }
  std::pair<int, int> compute_capability() const { return {cc_major_, cc_minor_}; }

  // Makes this device current on the calling thread (cudaSetDevice).
  void activate(const char* op) const;
  Launch launch(const char* op) const { return Launch{stream_, status_, op}; }
  Tensor allocate(DType dtype, std::vector<int64_t> shape, const char* op);
  std::shared_ptr<Buffer> scratch(size_t bytes, const char* op);

  // A serial for an op whose kernels check data; `format` turns its failure record into "<op>: <reason>". JS thread.
  uint32_t register_check(Formatter format);
  // A promise settled once everything enqueued so far has run: resolved with make_value(env) (JS thread), or
  // rejected with the first failure since the previous promise. `own_serial`: the op's own checks (no "reported
  // by" suffix). `keep` lives until then (e.g. the pinned block make_value reads). JS thread.
  Napi::Promise settle(Napi::Env env, const char* op, MakeValue make_value, uint32_t own_serial = 0,
                       std::shared_ptr<void> keep = nullptr);
  // Keeps `block` alive until the stream reaches this point (a host function drops it there).
  void release_after(std::shared_ptr<void> block, const char* op);
  // Runs fn on a CUDA host thread when the stream reaches this point; fn must not call CUDA.
  void host_function(std::function<void()> fn, const char* op);

  // The cuBLAS handle (cublasHandle_t), created on first use with its workspace from the allocator;
  // nullptr when the addon has no cuBLAS.
  void* cublas(const char* op);

  // Stops the completion thread and the thread-safe function. Idempotent. JS thread only.
  void shutdown();

 private:
  struct Wait {
    cudaEvent_t event;
    uint64_t id;
  };
  struct Completion {
    uint64_t id;
    std::string cuda_error;
  };
  struct Pending {
    Napi::Promise::Deferred deferred;
    MakeValue make_value;
    std::shared_ptr<void> snapshot;  // pinned DeviceStatus copy
    std::shared_ptr<void> keep;
    const char* op;
    uint32_t own_serial;
    uint32_t checks_upto;  // formatters up to this serial are done with after this promise
  };
  static void on_completion(Napi::Env env, Napi::Function, CudaDevice* device, Completion* done);
  using Tsfn = Napi::TypedThreadSafeFunction<CudaDevice, Completion, on_completion>;
  static void cleanup_hook(void* arg);
  void completion_loop();

  int ordinal_;
  bool tf32_;
  bool bf16_gathers_ = false;
  bool int8_topk_ = false;
  napi_env env_;
  int multiprocessors_ = 0, cc_major_ = 0, cc_minor_ = 0;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  DeviceStatus* status_ = nullptr;
  std::unique_ptr<Allocator> allocator_;
  std::shared_ptr<PinnedPool> pinned_;
  void* cublas_ = nullptr;
  void* cublas_workspace_ = nullptr;
  size_t cublas_workspace_bytes_ = 0;

  std::thread completer_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Wait> waits_;
  bool stop_ = false;
  bool shut_down_ = false;
  bool hook_registered_ = false;
  Tsfn tsfn_;
  // JS thread only:
  uint64_t next_completion_ = 1;
  uint32_t next_serial_ = 0;
  std::map<uint32_t, Formatter> formatters_;
  std::unordered_map<uint64_t, Pending> pending_;
  std::shared_ptr<CudaDevice> self_;  // keeps the device alive while promises are pending
};

// ---------------------------------------------------------------------------
// Argument checking for op entry points: addon.cuda.<op>(backend, ...args).
// The checks and messages are common::OpArgs, shared with the CPU backend's OpCall.
class OpCall : public common::OpArgs {
 public:
  OpCall(const Napi::CallbackInfo& info, const char* op);

  CudaDevice& device() const { return *device_; }
  const std::shared_ptr<CudaDevice>& device_ptr() const { return device_; }
  Launch launch() const { return device_->launch(op_); }
  std::shared_ptr<Buffer> scratch(size_t bytes) const { return device_->scratch(bytes, op_); }

  Tensor tensor(size_t index, const char* name) const;
  std::optional<Tensor> optional_tensor(size_t index, const char* name) const;

 private:
  std::shared_ptr<CudaDevice> device_;
};

// Runs an op entry point, turning C++ failures into JS errors: CudaFailure -> Error naming the
// op, the call and CUDA's message; DeviceOutOfMemory -> RangeError.
Napi::Value guarded(const Napi::CallbackInfo& info, const char* op, const std::function<Napi::Value()>& body);

// --- shared launcher helpers (rowsparse_ops.cc; used by topk_ops.cc and rewire_ops.cc) ---

// Checks W [L, k] float32, idx [L, k] index, b [L] float32 (b may be absent); returns {L, k}.
std::pair<int64_t, int64_t> check_ffi_layer(const OpCall& call, const Tensor& W, const Tensor& idx, const Tensor* b);
// Checks rowPtr [L+1], col [nnz], W [nnz], b [L] (b may be absent; b_name names it); returns {L, nnz}.
std::pair<int64_t, int64_t> check_csr_layer(const OpCall& call, const Tensor& rowPtr, const Tensor& col, const Tensor& W,
                                            const Tensor* b, const char* b_name = "b");
// Formatter of an FFI op: rank 1 = idx[l, j] >= I.
Formatter ffi_idx_formatter(const char* op, DType dtype, int64_t k, int64_t I);
// Formatter of a CSR op: ranks 1-3 rowPtr, 4 col.
Formatter csr_formatter(const char* op, DType row_ptr_dtype, DType col_dtype, int64_t L, int64_t nnz, int64_t I);
CheckValues csr_check_values(const Tensor& rowPtr, const Tensor& col);
// xT [I, B] of x [B, I] in scratch (x itself when B == 1); relu: of max(x, 0) (always a scratch copy).
struct TransposedInput {
  std::shared_ptr<Buffer> scratch;
  const float* data;
};
TransposedInput transposed_input(const OpCall& call, const Tensor& x, int64_t B, int64_t I, bool relu = false);
// The input of a fused row-sparse kernel: xT [I, B] as float32, or as bfloat16 where the device's
// bf16Gathers option is on (rowsparse_ops.cc).
struct GatherScratch {
  std::shared_ptr<Buffer> scratch;
  std::shared_ptr<Buffer> scale;  // int8: the row scales
  GatherInput input;
};
GatherScratch gather_input(const OpCall& call, const Tensor& x, int64_t B, int64_t I, bool relu = false);
// The fused top-k's input: int8 bytes and row scales where the device's int8TopK option is on, else gather_input.
GatherScratch topk_gather_input(const OpCall& call, const Tensor& x, int64_t B, int64_t I);

// Row-major C[M, N] = op(A) op(B) (gemm.cc): cuBLAS when built in, else sgemm_fallback.
void gemm(const OpCall& call, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
          const float* B, int64_t ldb, float* C, int64_t ldc);
bool have_cublas();
void destroy_cublas(void* handle);

}  // namespace xmc::cuda
