// Built instead of the CUDA sources when no CUDA compiler was found.
#include <napi.h>

#include "../cuda_runtime_info.h"
#include "../register.h"

namespace xmc {

CudaRuntimeInfo query_cuda_runtime() {
  CudaRuntimeInfo info;
  info.compiled = false;
  info.error = "this build of the addon has no CUDA backend (no CUDA compiler was found when it was built)";
  return info;
}

// No CudaBackend class and no `cuda` ops: src/native/cuda-backend.ts reports CUDA as unavailable.
void register_cuda(Napi::Env, Napi::Object) {}

}  // namespace xmc
