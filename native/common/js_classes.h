// The JS-facing plumbing that the CPU and CUDA backends share word for word:
// - the registry of each environment's backend and tensor constructors (the
//   addon can be loaded by several worker threads, each with its own napi_env,
//   so the constructors cannot be process globals);
// - the checks of the typed arrays given to backend.fromArray and tensor.write,
//   and of fill's value;
// - the tensor class's construction and its read-only accessors (TensorWrap);
// - backend.memoryStats().
// The messages are part of the API: tests check them word for word.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "op_args.h"

namespace xmc::common {

class ClassRegistry {
 public:
  struct Classes {
    Napi::FunctionReference backend, tensor;
  };
  // Keeps env's two constructors until env is torn down (an environment cleanup hook drops them).
  void add(Napi::Env env, Napi::Function backend, Napi::Function tensor);
  // env's constructors; env must have been added.
  Classes& at(napi_env env);

 private:
  struct Entry;
  std::mutex mu_;
  std::unordered_map<napi_env, Entry*> by_env_;
};

const uint8_t* typed_array_bytes(const Napi::TypedArray& a);

// backend.fromArray(typedArray, shape?): a Float32Array, Int32Array or Uint32Array, its dtype, and its shape
// (the given one, which must hold as many elements as the array, or [length]).
struct HostArray {
  Napi::TypedArray array;
  DType dtype;
  std::vector<int64_t> shape;
};
HostArray parse_from_array(const Napi::CallbackInfo& info);

// tensor.write(typedArray): the array, checked to have the tensor's dtype and element count.
Napi::TypedArray parse_write_source(const Napi::CallbackInfo& info, DType dtype, const std::vector<int64_t>& shape,
                                    int64_t size);

// fill(backend, t, value): argument `index` as the 32-bit pattern of a `dtype` element (a float32 value, or an
// integer in the dtype's range).
uint32_t parse_fill_bits(const OpArgs& call, size_t index, DType dtype);

// backend.memoryStats(): {currentBytes, peakBytes, liveAllocations} of a counting allocator.
template <class Allocator>
Napi::Object memory_stats(Napi::Env env, const Allocator& allocator) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("currentBytes", static_cast<double>(allocator.current_bytes()));
  o.Set("peakBytes", static_cast<double>(allocator.peak_bytes()));
  o.Set("liveAllocations", static_cast<double>(allocator.live_allocations()));
  return o;
}

// A backend's tensor class Derived (Napi::ObjectWrap<Derived> through this base): JS gets its objects from
// Create only (backend.tensor(), backend.fromArray(), op results); the accessors dtype, shape, size and
// disposed are here, read, write and dispose are Derived's (they differ by where the memory lives).
template <class Derived, class DeviceT, class TensorT>
class TensorWrap : public Napi::ObjectWrap<Derived> {
 public:
  static Napi::Object Create(ClassRegistry& registry, Napi::Env env, std::shared_ptr<DeviceT> device, TensorT tensor) {
    Init init{std::move(device), std::move(tensor)};
    return registry.at(env).tensor.New({Napi::External<Init>::New(env, &init)});
  }

  const std::shared_ptr<DeviceT>& device() const { return device_; }
  const std::optional<TensorT>& tensor() const { return tensor_; }  // empty once disposed

 protected:
  using Method = Napi::Value (Derived::*)(const Napi::CallbackInfo&);

  TensorWrap(const Napi::CallbackInfo& info, const char* class_name) : Napi::ObjectWrap<Derived>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), std::string(class_name) +
                                                 " cannot be constructed directly: use backend.tensor() or backend.fromArray()");
    Init* init = info[0].As<Napi::External<Init>>().Data();
    device_ = init->device;
    tensor_ = init->tensor;
  }

  static Napi::Function DefineTensorClass(Napi::Env env, const char* class_name, Method read, Method write, Method dispose) {
    using W = Napi::ObjectWrap<Derived>;
    return W::DefineClass(env, class_name,
                          {
                              W::InstanceAccessor("dtype", static_cast<Method>(&TensorWrap::GetDtype), nullptr),
                              W::InstanceAccessor("shape", static_cast<Method>(&TensorWrap::GetShape), nullptr),
                              W::InstanceAccessor("size", static_cast<Method>(&TensorWrap::GetSize), nullptr),
                              W::InstanceAccessor("disposed", static_cast<Method>(&TensorWrap::GetDisposed), nullptr),
                              W::InstanceMethod("read", read),
                              W::InstanceMethod("write", write),
                              W::InstanceMethod("dispose", dispose),
                          });
  }

  // The tensor, or "tensor.<what>: the tensor was disposed".
  const TensorT& live(const Napi::Env& env, const char* what) const {
    if (!tensor_) throw Napi::Error::New(env, std::string("tensor.") + what + ": the tensor was disposed");
    return *tensor_;
  }

  std::shared_ptr<DeviceT> device_;
  std::optional<TensorT> tensor_;

 private:
  struct Init {
    std::shared_ptr<DeviceT> device;
    TensorT tensor;
  };

  Napi::Value GetDtype(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), tensor_ ? dtype_name(tensor_->dtype) : "disposed");
  }
  Napi::Value GetShape(const Napi::CallbackInfo& info) {
    Napi::Array a = Napi::Array::New(info.Env());
    if (tensor_)
      for (size_t i = 0; i < tensor_->shape.size(); ++i) a.Set(i, Napi::Number::New(info.Env(), static_cast<double>(tensor_->shape[i])));
    return a;
  }
  Napi::Value GetSize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), tensor_ ? static_cast<double>(tensor_->size) : 0);
  }
  Napi::Value GetDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !tensor_); }
};

}  // namespace xmc::common
