// Entry point of the native addon `xmc_native.node`.
//
// Registers the functions that the TypeScript side reaches through
// src/native/index.ts. Each op family lives in its own file under native/cpu
// (CPU reference, always built) and native/cuda (CUDA kernels, built when
// nvcc is present); this file only wires them to JavaScript.
#include <napi.h>
#include "cuda_runtime_info.h"
#include "register.h"

namespace {

Napi::Value BackendInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("cpu", true);
  xmc::CudaRuntimeInfo cuda = xmc::query_cuda_runtime();
  Napi::Object c = Napi::Object::New(env);
  c.Set("compiled", cuda.compiled);
  c.Set("deviceCount", cuda.device_count);
  c.Set("deviceName", cuda.device_name);
  c.Set("runtimeVersion", cuda.runtime_version);
  c.Set("driverVersion", cuda.driver_version);
  if (!cuda.error.empty()) c.Set("error", cuda.error);
  out.Set("cuda", c);
  out.Set("hardwareThreads", static_cast<double>(std::thread::hardware_concurrency()));
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("abiVersion", Napi::Number::New(env, 1));
  exports.Set("backendInfo", Napi::Function::New(env, BackendInfo, "backendInfo"));
  xmc::register_all(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(xmc_native, Init)
