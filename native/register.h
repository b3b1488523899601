// Each op family file exposes a register_<family>(env, exports) function;
// register_all (native/register.cc) calls them all. Adding a family means
// adding one line there and one declaration here.
#pragma once
#include <napi.h>
#include <thread>

namespace xmc {

void register_synth(Napi::Env env, Napi::Object exports);
// CPU reference backend (native/cpu/*.cc, see docs/BACKEND.md).
void register_backend(Napi::Env env, Napi::Object exports);  // CpuBackend, CpuTensor
void register_dense(Napi::Env env, Napi::Object exports);    // denseForward/Backward, relu*, dropout
void register_ffi(Napi::Env env, Napi::Object exports);      // ffiForward/Backward
void register_sparse(Napi::Env env, Napi::Object exports);   // sparseForward/Backward (CSR)
void register_loss(Napi::Env env, Napi::Object exports);     // lossForward
void register_adam(Napi::Env env, Napi::Object exports);     // adam
void register_rewire(Napi::Env env, Napi::Object exports);   // rewireFfi, rewireSparse
void register_topk(Napi::Env env, Napi::Object exports);     // topK, denseTopK, ffiTopK, sparseTopK
// CUDA backend (native/cuda/, see docs/BACKEND.md): CudaBackend, CudaTensor and
// the op functions under exports.cuda; a no-op when built without CUDA.
void register_cuda(Napi::Env env, Napi::Object exports);
void register_all(Napi::Env env, Napi::Object exports);

}  // namespace xmc
