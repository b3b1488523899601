// XMC_HD: functions compiled for the host and, under nvcc, for the device too (the arithmetic that the
// CPU backend and the CUDA kernels must share).
#pragma once

#if defined(__CUDACC__)
#define XMC_HD __host__ __device__
#else
#define XMC_HD
#endif
