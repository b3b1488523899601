// Built instead of the CUDA sources when no CUDA compiler was found.
#include "cuda_runtime_info.h"

namespace xmc {

CudaRuntimeInfo query_cuda_runtime() {
  CudaRuntimeInfo info;
  info.compiled = false;
  info.error = "this build of the addon has no CUDA backend (no CUDA compiler was found when it was built)";
  return info;
}

}  // namespace xmc
