// See js_classes.h.
#include "js_classes.h"

#include <cmath>
#include <cstring>
#include <string>

namespace xmc::common {

struct ClassRegistry::Entry {
  ClassRegistry* registry;
  napi_env env;
  Classes classes;
};

void ClassRegistry::add(Napi::Env env, Napi::Function backend, Napi::Function tensor) {
  auto* entry = new Entry{this, env, {}};
  entry->classes.backend = Napi::Persistent(backend);
  entry->classes.tensor = Napi::Persistent(tensor);
  {
    std::lock_guard<std::mutex> lock(mu_);
    by_env_[env] = entry;
  }
  napi_add_env_cleanup_hook(
      env,
      [](void* arg) {
        auto* e = static_cast<Entry*>(arg);
        {
          std::lock_guard<std::mutex> lock(e->registry->mu_);
          auto it = e->registry->by_env_.find(e->env);
          if (it != e->registry->by_env_.end() && it->second == e) e->registry->by_env_.erase(it);
        }
        delete e;
      },
      entry);
}

ClassRegistry::Classes& ClassRegistry::at(napi_env env) {
  std::lock_guard<std::mutex> lock(mu_);
  return by_env_.at(env)->classes;
}

const uint8_t* typed_array_bytes(const Napi::TypedArray& a) {
  return static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
}

HostArray parse_from_array(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* expected = "backend.fromArray: expected a Float32Array, Int32Array or Uint32Array";
  if (info.Length() < 1 || !info[0].IsTypedArray()) throw Napi::TypeError::New(env, expected);
  Napi::TypedArray src = info[0].As<Napi::TypedArray>();
  DType dtype;
  switch (src.TypedArrayType()) {
    case napi_float32_array: dtype = DType::Float32; break;
    case napi_int32_array: dtype = DType::Int32; break;
    case napi_uint32_array: dtype = DType::Uint32; break;
    default: throw Napi::TypeError::New(env, expected);
  }
  std::vector<int64_t> shape;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    shape = parse_shape(env, info[1], "backend.fromArray");
  } else {
    shape = {static_cast<int64_t>(src.ElementLength())};
  }
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (n != static_cast<int64_t>(src.ElementLength()))
    throw Napi::RangeError::New(env, "backend.fromArray: shape " + shape_string(shape) + " holds " + std::to_string(n) +
                                         " elements but the array has " + std::to_string(src.ElementLength()));
  return {src, dtype, std::move(shape)};
}

Napi::TypedArray parse_write_source(const Napi::CallbackInfo& info, DType dtype, const std::vector<int64_t>& shape,
                                    int64_t size) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) throw Napi::TypeError::New(env, "tensor.write: expected a typed array");
  Napi::TypedArray src = info[0].As<Napi::TypedArray>();
  const napi_typedarray_type want = dtype == DType::Float32 ? napi_float32_array
                                    : dtype == DType::Int32 ? napi_int32_array
                                                            : napi_uint32_array;
  if (src.TypedArrayType() != want)
    throw Napi::TypeError::New(env, std::string("tensor.write: a ") + dtype_name(dtype) + " tensor needs a " +
                                        (dtype == DType::Float32 ? "Float32Array" : dtype == DType::Int32 ? "Int32Array" : "Uint32Array"));
  if (static_cast<int64_t>(src.ElementLength()) != size)
    throw Napi::RangeError::New(env, "tensor.write: the array has " + std::to_string(src.ElementLength()) +
                                         " elements, the tensor " + shape_string(shape) + " has " + std::to_string(size));
  return src;
}

uint32_t parse_fill_bits(const OpArgs& call, size_t index, DType dtype) {
  const Napi::CallbackInfo& info = call.info();
  if (info.Length() <= index || !info[index].IsNumber()) call.type_error("value must be a number");
  const double v = info[index].As<Napi::Number>().DoubleValue();
  uint32_t bits;
  if (dtype == DType::Float32) {
    const float f = static_cast<float>(v);
    std::memcpy(&bits, &f, 4);
  } else {
    const double lo = dtype == DType::Int32 ? -2147483648.0 : 0.0, hi = dtype == DType::Int32 ? 2147483647.0 : 4294967295.0;
    if (!(v >= lo && v <= hi && v == std::floor(v)))
      call.range_error(std::string("value must be an integer in the range of ") + dtype_name(dtype) + ", got " + std::to_string(v));
    bits = dtype == DType::Int32 ? static_cast<uint32_t>(static_cast<int32_t>(v)) : static_cast<uint32_t>(v);
  }
  return bits;
}

}  // namespace xmc::common
