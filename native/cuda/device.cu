// Device discovery for the CUDA backend. Never throws: a machine with no GPU
// or no driver gets a CudaRuntimeInfo whose `error` says so, and the
// JavaScript side turns that into a clean Error when CUDA is asked for.
#include <cuda_runtime.h>
#include "cuda_runtime_info.h"

namespace xmc {

CudaRuntimeInfo query_cuda_runtime() {
  CudaRuntimeInfo info;
  info.compiled = true;
  cudaRuntimeGetVersion(&info.runtime_version);
  cudaError_t drv = cudaDriverGetVersion(&info.driver_version);
  if (drv != cudaSuccess || info.driver_version == 0) {
    info.error = "no NVIDIA driver found (cudaDriverGetVersion: " +
                 std::string(cudaGetErrorString(drv)) + ")";
    cudaGetLastError();
    return info;
  }
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    info.error = std::string("no usable GPU (cudaGetDeviceCount: ") + cudaGetErrorString(err) + ")";
    cudaGetLastError();
    return info;
  }
  info.device_count = count;
  if (count == 0) {
    info.error = "no GPU visible (cudaGetDeviceCount returned 0; check CUDA_VISIBLE_DEVICES)";
    return info;
  }
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) info.device_name = prop.name;
  return info;
}

}  // namespace xmc
