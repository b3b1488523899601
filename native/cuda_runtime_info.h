// What the CUDA side of the addon can tell the JavaScript side about itself.
// Implemented by native/cuda/device.cu when the CUDA backend is compiled, and
// by native/cuda/no_cuda.cc otherwise, so addon.cc never needs #ifdefs.
#pragma once
#include <string>

namespace xmc {

struct CudaRuntimeInfo {
  bool compiled = false;     // was the CUDA backend built into this addon?
  int device_count = 0;      // visible devices (0 when none or on error)
  std::string error;         // why no device is usable, empty when one is
  std::string device_name;   // name of device 0 when there is one
  int runtime_version = 0;   // cudaRuntimeGetVersion
  int driver_version = 0;    // cudaDriverGetVersion (0: no driver)
};

CudaRuntimeInfo query_cuda_runtime();

}  // namespace xmc
